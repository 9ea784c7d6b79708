package dataset

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// smallSet writes an IDX file of n 2×2 images, image i holding i+1 everywhere (in 1/255), with
// labels i mod 3.
func smallSet(t *testing.T, n int) (images, labels string) {
	payload := make([]byte, 4*n)
	lab := make([]byte, n)
	for i := 0; i < n; i++ {
		for j := 0; j < 4; j++ {
			payload[4*i+j] = byte(i + 1)
		}
		lab[i] = byte(i % 3)
	}
	dir := t.TempDir()
	return writeFile(t, dir, "x.idx", idxBytes(idxImages, []uint32{uint32(n), 2, 2}, payload)),
		writeFile(t, dir, "y.idx", idxBytes(idxLabels, []uint32{uint32(n)}, lab))
}

func TestNormalize(t *testing.T) {
	img, _ := smallSet(t, 2)
	tests := []struct {
		name      string
		mean, std []float32
		channels  int
		want      func(c int, x float32) float32
	}{
		{"none", nil, nil, 1, func(c int, x float32) float32 { return x }},
		{"mean and std", []float32{0.5}, []float32{0.25}, 1, func(c int, x float32) float32 { return (x - 0.5) / 0.25 }},
		{"mean only", []float32{0.1}, nil, 1, func(c int, x float32) float32 { return x - 0.1 }},
		{"std only", nil, []float32{2}, 1, func(c int, x float32) float32 { return x / 2 }},
		{"per channel", []float32{0.485, 0.456, 0.406}, []float32{0.229, 0.224, 0.225}, 3,
			func(c int, x float32) float32 {
				return (x - []float32{0.485, 0.456, 0.406}[c]) / []float32{0.229, 0.224, 0.225}[c]
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(img, "", Options{Channels: tc.channels, Height: 2, Width: 2, Mean: tc.mean, Std: tc.std})
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < s.N; k++ {
				for c := 0; c < s.C; c++ {
					for i := 0; i < 4; i++ {
						got := s.Floats()[(k*s.C+c)*4+i]
						if want := tc.want(c, float32(k+1)/255); !near(got, want, 1e-6) {
							t.Fatalf("image %d channel %d = %v, want %v", k, c, got, want)
						}
					}
				}
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	img, _ := smallSet(t, 2)
	tests := []struct {
		name string
		path string
		opt  Options
		want string
	}{
		{"mean length", img, Options{Channels: 3, Height: 2, Width: 2, Mean: []float32{1, 2}}, "data: mean has 2 values, want one per channel (3)"},
		{"std length", img, Options{Channels: 1, Height: 2, Width: 2, Std: []float32{1, 2}}, "data: std has 2 values, want one per channel (1)"},
		{"std zero", img, Options{Channels: 3, Height: 2, Width: 2, Std: []float32{1, 0, 1}}, "data: std[1] is 0"},
		{"shape", img, Options{Channels: 0, Height: 2, Width: 2}, "data: bad model input shape 0×2×2"},
		{"negative samples", img, Options{Channels: 1, Height: 2, Width: 2, Samples: -1}, "data: samples is -1"},
		{"missing", filepath.Join(t.TempDir(), "absent.idx"), Options{Channels: 1, Height: 2, Width: 2}, "absent.idx: no such file or directory"},
		{"empty path", "", Options{Channels: 1, Height: 2, Width: 2}, "data: no path given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path, "", tc.opt)
			named := "" // options errors come before any file is read
			if tc.name == "missing" {
				named = tc.path
			}
			checkOneLineErr(t, err, "data: ", named, tc.want)
		})
	}
}

func TestBatch(t *testing.T) {
	img, _ := smallSet(t, 5)
	s, err := Load(img, "", Options{Channels: 1, Height: 2, Width: 2})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ i, size, wantLen, first int }{
		{0, 2, 8, 1}, {1, 2, 8, 3}, {2, 2, 4, 5}, {3, 2, 0, 0}, {0, 10, 20, 1}, {-1, 2, 0, 0}, {0, 0, 0, 0},
	}
	for _, tc := range tests {
		b := s.Batch(tc.i, tc.size)
		if len(b) != tc.wantLen || (tc.wantLen > 0 && b[0] != float32(tc.first)/255) {
			t.Errorf("Batch(%d, %d): len %d, want %d (first image %d)", tc.i, tc.size, len(b), tc.wantLen, tc.first)
		}
	}
	b := s.Batch(1, 2)
	b[0] = 42
	if got := s.Batch(1, 2)[0]; got != float32(3)/255 {
		t.Errorf("writing to a batch changed the set: image 2 now starts with %v", got)
	}
}

// TestSetKeepsBytes: images from bytes stay bytes (a quarter of the floats' memory), and the views
// Split, Head and Range make share them; decoding gives what the floats would have been.
func TestSetKeepsBytes(t *testing.T) {
	img, lab := smallSet(t, 20)
	s, err := Load(img, lab, Options{Channels: 3, Height: 2, Width: 2, Mean: []float32{0.5, 0.25, 0}, Std: []float32{2, 1, 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if s.st.enc != encBytes || len(s.st.bytes) != 20*1*2*2 || s.st.floats != nil {
		t.Fatalf("stored as %v with %d bytes and %d floats, want 80 bytes (one grey plane per image)", s.st.enc, len(s.st.bytes), len(s.st.floats))
	}
	train, val := s.Split(0.25, 3)
	for _, v := range []*Set{train, val, s.Head(3), s.Range(4, 9)} {
		if v.st != s.st {
			t.Fatal("a view copied the images")
		}
	}
	all := s.Floats()
	for k := 0; k < val.N; k++ {
		got := make([]float32, 12)
		val.Image(k, got)
		j := val.idx[k]
		for c := 0; c < 3; c++ {
			for i := 0; i < 4; i++ {
				if got[c*4+i] != all[j*12+c*4+i] {
					t.Fatalf("held-back image %d (image %d of the set), channel %d: %v, want %v", k, j, c, got[c*4+i], all[j*12+c*4+i])
				}
			}
		}
		// The grey plane is replicated, then normalised per channel.
		raw := float32(s.st.bytes[j*4]) / 255
		want := []float32{(raw - 0.5) * (1 / float32(2)), (raw - 0.25) * 1, (raw - 0) * (1 / float32(0.5))}
		for c := 0; c < 3; c++ {
			if got[c*4] != want[c] {
				t.Errorf("image %d channel %d: %v, want %v", j, c, got[c*4], want[c])
			}
		}
	}
}

func TestSplit(t *testing.T) {
	img, lab := smallSet(t, 20)
	s, err := Load(img, lab, Options{Channels: 1, Height: 2, Width: 2})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(p *Set) []int { // image i holds (i+1)/255
		out := make([]int, p.N)
		for k := range out {
			out[k] = int(p.Floats()[k*4]*255+0.5) - 1
		}
		return out
	}
	tests := []struct {
		heldOut float64
		wantVal int
	}{{0.2, 4}, {0, 0}, {0.01, 1}, {0.99, 19}, {1, 19}, {-1, 0}}
	for _, tc := range tests {
		train, val := s.Split(tc.heldOut, 3)
		if val.N != tc.wantVal || train.N != 20-tc.wantVal || len(train.Floats()) != train.N*4 || len(val.Labels) != val.N {
			t.Fatalf("Split(%v): train %d, val %d; want val %d", tc.heldOut, train.N, val.N, tc.wantVal)
		}
		all := append(ids(train), ids(val)...)
		for k, i := range all {
			p, j := train, k
			if k >= train.N {
				p, j = val, k-train.N
			}
			if p.Labels[j] != i%3 {
				t.Errorf("image %d moved without its label", i)
			}
		}
		slices.Sort(all)
		for i, v := range all {
			if v != i {
				t.Fatalf("Split(%v) lost or duplicated images: %v", tc.heldOut, all)
			}
		}
	}
	t1, v1 := s.Split(0.25, 9)
	t2, v2 := s.Split(0.25, 9)
	t3, _ := s.Split(0.25, 10)
	if !slices.Equal(ids(t1), ids(t2)) || !slices.Equal(ids(v1), ids(v2)) {
		t.Errorf("same seed, different splits: %v/%v vs %v/%v", ids(t1), ids(v1), ids(t2), ids(v2))
	}
	if slices.Equal(ids(t1), ids(t3)) {
		t.Errorf("seeds 9 and 10 gave the same order %v", ids(t1))
	}
	if slices.Equal(ids(t1), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}) {
		t.Errorf("Split did not shuffle")
	}
	// The order is fixed across Go releases (PCG); pin it.
	if got, want := ids(v1), []int{19, 8, 14, 4, 1}; !slices.Equal(got, want) {
		t.Errorf("Split(0.25, 9) held out %v, want %v", got, want)
	}
}

func TestParseFloats(t *testing.T) {
	tests := []struct {
		in      string
		want    []float32
		wantErr string
	}{
		{"0.485,0.456,0.406", []float32{0.485, 0.456, 0.406}, ""},
		{" 0.5 , 1e-1 ", []float32{0.5, 0.1}, ""},
		{"-2", []float32{-2}, ""},
		{"", nil, ""},
		{"0.1,,0.2", nil, `bad number "" in "0.1,,0.2"`},
		{"0.1,x", nil, `bad number "x" in "0.1,x"`},
		{"NaN", nil, `bad number "NaN"`},
		{"1e40", nil, `bad number "1e40"`},
	}
	for _, tc := range tests {
		got, err := ParseFloats(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseFloats(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseFloats(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

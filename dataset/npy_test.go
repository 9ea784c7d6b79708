package dataset

import (
	"bytes"
	"math"
	"testing"
)

func TestLoadNPY(t *testing.T) {
	dir := t.TempDir()
	f := make([]float32, 2*3*2*2)
	for i := range f {
		f[i] = float32(i)/4 - 1
	}
	u := ramp(3*2*2, 5)
	f64 := make([]byte, 8*4)
	for i := 0; i < 4; i++ {
		v := math.Float64bits(float64(i) * 0.5)
		for k := 0; k < 8; k++ {
			f64[8*i+k] = byte(v >> (8 * k))
		}
	}
	tests := []struct {
		name  string
		bytes []byte
		opt   Options
		wantN int
		want  []float32 // all values kept
		notes int
	}{
		{"float32 NCHW", npyBytes("<f4", []int{2, 3, 2, 2}, f32Bytes(f)), Options{Channels: 3, Height: 2, Width: 2}, 2, f, 0},
		{"float32 samples", npyBytes("<f4", []int{2, 3, 2, 2}, f32Bytes(f)), Options{Channels: 3, Height: 2, Width: 2, Samples: 1}, 1, f[:12], 0},
		{"float32 NHW", npyBytes("<f4", []int{6, 2, 2}, f32Bytes(f)), Options{Channels: 1, Height: 2, Width: 2}, 6, f, 0},
		{"uint8 scaled", npyBytes("|u1", []int{3, 1, 2, 2}, u), Options{Channels: 1, Height: 2, Width: 2}, 3, unit(u), 0},
		{"uint8 grey to RGB", npyBytes("|u1", []int{1, 2, 2}, u[:4]), Options{Channels: 3, Height: 2, Width: 2}, 1,
			append(append(unit(u[:4]), unit(u[:4])...), unit(u[:4])...), 1},
		{"float64 narrowed", npyBytes("<f8", []int{1, 1, 2, 2}, f64), Options{Channels: 1, Height: 2, Width: 2}, 1, []float32{0, 0.5, 1, 1.5}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, zip := range []bool{false, true} {
				b, name := tc.bytes, "x.npy"
				if zip {
					b, name = gz(b), "x.npy.gz"
				}
				p := writeFile(t, dir, name, b)
				s, err := Load(p, "", tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				if s.N != tc.wantN || len(s.Floats()) != len(tc.want) || len(s.Notes) != tc.notes {
					t.Fatalf("N=%d len=%d notes=%q, want N=%d len=%d notes=%d", s.N, len(s.Floats()), s.Notes, tc.wantN, len(tc.want), tc.notes)
				}
				for i, v := range tc.want {
					if s.Floats()[i] != v {
						t.Fatalf("value %d = %v, want %v", i, s.Floats()[i], v)
					}
				}
			}
		})
	}
}

func unit(b []byte) []float32 {
	out := make([]float32, len(b))
	for i, v := range b {
		out[i] = float32(v) / 255
	}
	return out
}

func TestNPYLabels(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, dir, "x.npy", npyBytes("|u1", []int{4, 1, 2}, ramp(8, 0)))
	opt := Options{Channels: 1, Height: 1, Width: 2}
	tests := []struct {
		name  string
		bytes []byte
		want  []int
	}{
		{"int64", npyBytes("<i8", []int{4}, i64Bytes([]int64{9, 0, 7, 2})), []int{9, 0, 7, 2}},
		{"int32", npyBytes("<i4", []int{4}, []byte{9, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0}), []int{9, 0, 7, 2}},
		{"uint8 N×1", npyBytes("|u1", []int{4, 1}, []byte{9, 0, 7, 2}), []int{9, 0, 7, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lp := writeFile(t, dir, "y.npy", tc.bytes)
			s, err := Load(img, lp, opt)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range tc.want {
				if s.Labels[i] != v {
					t.Fatalf("labels %v, want %v", s.Labels, tc.want)
				}
			}
			s, err = Load(img, lp, Options{Channels: 1, Height: 1, Width: 2, Samples: 2})
			if err != nil || len(s.Labels) != 2 || s.Labels[1] != tc.want[1] {
				t.Fatalf("with samples: %v, %v", s.Labels, err)
			}
		})
	}
}

func TestLoadNPYErrors(t *testing.T) {
	dir := t.TempDir()
	opt := Options{Channels: 3, Height: 2, Width: 2}
	img := npyBytes("<f4", []int{2, 3, 2, 2}, f32Bytes(make([]float32, 24)))
	tests := []struct {
		name         string
		file         string
		bytes        []byte
		labels       string
		lbytes       []byte
		opt          Options
		prefix, want string
	}{
		{"wrong shape", "s.npy", npyBytes("<f4", []int{2, 3, 4, 4}, nil), "", nil, opt, "data: ",
			".npy shape (2, 3, 4, 4) does not fit the model's input 3×2×2"},
		{"wrong channels", "c.npy", npyBytes("<f4", []int{2, 2, 2, 2}, nil), "", nil, opt, "data: ", "shape (2, 2, 2, 2) does not fit"},
		{"NHW for 4 channels", "c4.npy", npyBytes("<f4", []int{2, 2, 2}, nil), "", nil, Options{Channels: 4, Height: 2, Width: 2}, "data: ", "does not fit"},
		{"2-d", "v.npy", npyBytes("<f4", []int{2, 12}, nil), "", nil, opt, "data: ", "shape (2, 12) does not fit"},
		{"dtype", "i.npy", npyBytes("<i8", []int{2, 3, 2, 2}, nil), "", nil, opt, "data: ", `.npy dtype "<i8" is not supported`},
		{"big-endian", "be.npy", npyBytes(">f4", []int{2, 3, 2, 2}, nil), "", nil, opt, "data: ", `dtype ">f4" is not supported`},
		{"truncated", "t.npy", npyBytes("<f4", []int{1000, 3, 2, 2}, make([]byte, 100)), "", nil, opt, "data: ",
			"truncated: header says shape (1000, 3, 2, 2) float32, file has 100 bytes of data"},
		{"trailing", "l.npy", append(img, 0, 0, 0, 0), "", nil, opt, "data: ", "(96 bytes), file has 100 bytes of data"},
		{"NaN", "nan.npy", npyBytes("<f4", []int{1, 3, 2, 2}, f32Bytes([]float32{0, 0, 0, 0, 0, float32(math.NaN()), 0, 0, 0, 0, 0, 0})), "", nil, opt, "data: ", "image 0 holds NaN"},
		{"bad header", "h.npy", []byte("\x93NUMPY\x01\x00\x04\x00abcd"), "", nil, opt, "data: ", "bad .npy header"},
		{"cut header", "ch.npy", []byte("\x93NUMPY\x01\x00\x40\x00{'descr'"), "", nil, opt, "data: ", "truncated: the .npy header needs 64 bytes"},
		{"version", "v9.npy", []byte("\x93NUMPY\x09\x00\x40\x00"), "", nil, opt, "data: ", ".npy version 9.0 is not supported"},
		{"fortran", "f.npy", fortran(npyBytes("<f4", []int{2, 3, 2, 2}, make([]byte, 192))), "", nil, opt, "data: ", "Fortran-order"},
		{"float labels", "x.npy", img, "fl.npy", npyBytes("<f4", []int{2}, f32Bytes([]float32{1, 2})), opt, "labels: ", ".npy holds floats"},
		{"matrix labels", "x.npy", img, "ml.npy", npyBytes("<i8", []int{1, 2}, i64Bytes([]int64{1, 2})), opt, "labels: ", "shape (1, 2) is not a label vector"},
		{"negative label", "x.npy", img, "nl.npy", npyBytes("<i8", []int{2}, i64Bytes([]int64{1, -1})), opt, "labels: ", "label -1 at index 1 is out of range"},
		{"label count", "x.npy", img, "F.npy", npyBytes("<i8", []int{3}, i64Bytes([]int64{1, 2, 3})), opt, "labels: ", "has 3 labels for 2 images"},
		{"labels missing", "x.npy", img, "", nil, opt, "labels: ", "no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, tc.file, tc.bytes)
			lp, named := "", p
			switch {
			case tc.labels != "":
				lp = writeFile(t, dir, tc.labels, tc.lbytes)
				named = lp
			case tc.prefix == "labels: ":
				lp = dir + "/absent.npy"
				named = lp
			}
			_, err := Load(p, lp, tc.opt)
			checkOneLineErr(t, err, tc.prefix+named, named, tc.want)
		})
	}
}

// fortran marks an .npy file Fortran-ordered (same header length: "True " for "False").
func fortran(b []byte) []byte {
	return bytes.Replace(b, []byte("False"), []byte("True "), 1)
}

package dataset

import (
	"testing"
)

func TestLoadIDX(t *testing.T) {
	const n, h, w = 5, 4, 3
	payload := ramp(n*h*w, 1)
	labels := []byte{3, 1, 4, 1, 5}
	images := idxBytes(idxImages, []uint32{n, h, w}, payload)
	lab := idxBytes(idxLabels, []uint32{n}, labels)
	dir := t.TempDir()
	plain := writeFile(t, dir, "img.idx", images)
	gzipped := writeFile(t, dir, "img.idx.gz", gz(images))
	labPlain := writeFile(t, dir, "lab.idx", lab)
	labGz := writeFile(t, dir, "lab.idx.gz", gz(lab))

	tests := []struct {
		name      string
		data, lab string
		opt       Options
		wantN     int
		first     []int // source images kept, in order
		notes     int
	}{
		{"plain", plain, "", Options{Channels: 1, Height: h, Width: w}, n, []int{0, 1, 2, 3, 4}, 0},
		{"gz", gzipped, labGz, Options{Channels: 1, Height: h, Width: w}, n, []int{0, 1, 2, 3, 4}, 0},
		{"gz labels plain", gzipped, labPlain, Options{Channels: 1, Height: h, Width: w}, n, []int{0, 1, 2, 3, 4}, 0},
		{"samples keeps the first", plain, labPlain, Options{Channels: 1, Height: h, Width: w, Samples: 2}, 2, []int{0, 1}, 0},
		{"samples beyond N", plain, "", Options{Channels: 1, Height: h, Width: w, Samples: 9}, n, []int{0, 1, 2, 3, 4}, 1},
		{"grey to RGB", gzipped, labGz, Options{Channels: 3, Height: h, Width: w, Samples: 3}, 3, []int{0, 1, 2}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(tc.data, tc.lab, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if s.N != tc.wantN || s.C != tc.opt.Channels || s.H != h || s.W != w || len(s.Floats()) != s.N*s.C*h*w {
				t.Fatalf("got N=%d C=%d H=%d W=%d len=%d", s.N, s.C, s.H, s.W, len(s.Floats()))
			}
			if len(s.Notes) != tc.notes {
				t.Errorf("notes %q, want %d", s.Notes, tc.notes)
			}
			for k, src := range tc.first {
				for c := 0; c < s.C; c++ {
					for i := 0; i < h*w; i++ {
						got := s.Floats()[(k*s.C+c)*h*w+i]
						want := float32(payload[src*h*w+i]) / 255
						if got != want {
							t.Fatalf("image %d channel %d pixel %d = %v, want %v", k, c, i, got, want)
						}
					}
				}
				if tc.lab != "" && s.Labels[k] != int(labels[src]) {
					t.Errorf("label %d = %d, want %d", k, s.Labels[k], labels[src])
				}
			}
			if tc.lab == "" && s.Labels != nil {
				t.Errorf("labels %v without a labels file", s.Labels)
			}
			if s.Source != tc.data {
				t.Errorf("source %q, want %q", s.Source, tc.data)
			}
		})
	}
}

func TestLoadIDXErrors(t *testing.T) {
	dir := t.TempDir()
	good := idxBytes(idxImages, []uint32{4, 2, 2}, ramp(16, 0))
	opt := Options{Channels: 1, Height: 2, Width: 2}
	corrupt := gz(good)
	corrupt[len(corrupt)-6] ^= 0xff // CRC-32 of the payload
	tests := []struct {
		name   string
		file   string
		bytes  []byte
		labels string // labels file name, written from lbytes
		lbytes []byte
		opt    Options
		prefix string
		want   string
	}{
		{"truncated", "train.idx", idxBytes(idxImages, []uint32{60000, 2, 2}, ramp(1234, 0)), "", nil, opt,
			"data: ", "truncated: header says 60000 images of 2×2, file has 1234 bytes of data"},
		{"truncated gz", "train.idx.gz", gz(idxBytes(idxImages, []uint32{60000, 2, 2}, ramp(1234, 0))), "", nil,
			Options{Channels: 1, Height: 2, Width: 2, Samples: 1}, "data: ", "truncated: header says 60000 images of 2×2, file has 1234 bytes of data"},
		{"truncated header", "h.idx", good[:9], "", nil, opt, "data: ", "truncated: the IDX header has 3 dimensions but ends after 1"},
		{"trailing bytes", "long.idx", append(append([]byte{}, good...), 1, 2), "", nil, opt, "data: ", "header says 4 images of 2×2 (16 bytes), file has 18 bytes of data"},
		{"no images", "empty.idx", idxBytes(idxImages, []uint32{0, 2, 2}, nil), "", nil, opt, "data: ", "holds no images"},
		{"wrong size", "big.idx", idxBytes(idxImages, []uint32{1, 28, 28}, ramp(784, 0)), "", nil, Options{Channels: 1, Height: 32, Width: 32},
			"data: ", "images are 28×28, the model takes 32×32"},
		{"wrong channels", "c4.idx", good, "", nil, Options{Channels: 4, Height: 2, Width: 2}, "data: ", "IDX images have 1 channel, the model takes 4"},
		{"bad gzip header", "bad.gz", []byte{0x1f, 0x8b, 0, 0, 1, 2, 3}, "", nil, opt, "data: ", "bad gzip"},
		{"bad gzip checksum", "crc.idx.gz", corrupt, "", nil, opt, "data: ", "bad gzip: gzip: invalid checksum"},
		{"cut gzip", "cut.idx.gz", gz(good)[:30], "", nil, opt, "data: ", "bad gzip: unexpected EOF"},
		{"labels as data", "lab.idx", idxBytes(idxLabels, []uint32{4}, ramp(4, 0)), "", nil, opt, "data: ", "holds IDX labels"},
		{"int IDX", "int.idx", idxBytes(0x00000C03, []uint32{1, 2, 2}, nil), "", nil, opt, "data: ", "IDX element type 0x0C is not supported"},
		{"4-d IDX", "4d.idx", idxBytes(0x00000804, []uint32{1, 1, 2, 2}, ramp(4, 0)), "", nil, opt, "data: ", "IDX with 4 dimensions"},
		{"unknown", "x.bin", []byte("hello world"), "", nil, opt, "data: ", "unrecognised format"},
		{"empty file", "zero.idx", nil, "", nil, opt, "data: ", "unrecognised format"},
		{"label count", "img.idx", good, "F.idx", idxBytes(idxLabels, []uint32{3}, ramp(3, 0)), opt, "labels: ", "has 3 labels for 4 images"},
		{"labels truncated", "img.idx", good, "short.idx", idxBytes(idxLabels, []uint32{4}, ramp(2, 0)), opt, "labels: ", "truncated: header says 4 labels, file has 2 bytes of data"},
		{"labels trailing", "img.idx", good, "long.idx", idxBytes(idxLabels, []uint32{4}, ramp(6, 0)), opt, "labels: ", "header says 4 labels, file has 6 bytes of data"},
		{"images as labels", "img.idx", good, "img2.idx", good, opt, "labels: ", "holds IDX images"},
		{"labels bad gzip", "img.idx", good, "lab.gz", gz(ramp(8, 0))[:12], opt, "labels: ", "bad gzip"},
		{"labels unknown", "img.idx", good, "lab.txt", []byte("1\n2\n3\n4\n"), opt, "labels: ", "unrecognised format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, tc.file, tc.bytes)
			lp, named := "", p
			if tc.labels != "" {
				lp = writeFile(t, dir, tc.labels, tc.lbytes)
				named = lp
			}
			_, err := Load(p, lp, tc.opt)
			checkOneLineErr(t, err, tc.prefix+named, named, tc.want)
		})
	}
}

package dataset

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// fuzzShape reads the image shape a stream's header claims, so the fuzzer gets past the shape
// checks to the payload: C, H, W clamped to what Options accepts.
func fuzzShape(data []byte) (c, h, w int) {
	c, h, w = 1, 1, 1
	r, k, err := sniff(bytes.NewReader(data))
	if err != nil {
		return
	}
	clamp := func(d int) int { return min(max(d, 1), maxDim) }
	switch k {
	case kindIDX:
		var b [16]byte
		if n, _ := io.ReadFull(r, b[:]); n == 16 {
			h, w = clamp(int(binary.BigEndian.Uint32(b[8:]))), clamp(int(binary.BigEndian.Uint32(b[12:])))
		}
	case kindNPY:
		if hd, err := readNPYHeader(r); err == nil && len(hd.Shape) >= 3 {
			s := hd.Shape
			h, w = clamp(s[len(s)-2]), clamp(s[len(s)-1])
			if len(s) == 4 {
				c = clamp(s[1])
			}
		}
	}
	return
}

// FuzzLoadIDX feeds arbitrary bytes to the stream loader (IDX images, and .npy when the bytes say
// so, either possibly gzipped) and to the label readers. Nothing may panic, every error is one
// line naming the input, and a success is a consistent Set.
func FuzzLoadIDX(f *testing.F) {
	img := idxBytes(idxImages, []uint32{3, 2, 2}, ramp(12, 0))
	f.Add(img, uint8(0), false)
	f.Add(gz(img), uint8(2), true)
	f.Add(idxBytes(idxLabels, []uint32{4}, ramp(4, 0)), uint8(0), false)
	f.Add(npyBytes("|u1", []int{2, 1, 2, 2}, ramp(8, 0)), uint8(1), true)
	f.Add(npyBytes("<f4", []int{1, 2, 2}, f32Bytes([]float32{0, 1, 2, 3})), uint8(0), false)
	f.Fuzz(func(t *testing.T, data []byte, samples uint8, rgb bool) {
		c, h, w := fuzzShape(data)
		if rgb && c == 1 {
			c = 3
		}
		opt := Options{Channels: c, Height: h, Width: w, Samples: int(samples % 8)}
		s, total, err := loadStream("fuzz", bytes.NewReader(data), opt)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "data: fuzz: ") {
				t.Fatalf("bad error %q", msg)
			}
		} else {
			if s.N <= 0 || s.N > total || (opt.Samples > 0 && s.N > opt.Samples) || s.C != c || s.H != h || s.W != w ||
				len(s.Images) != s.N*s.C*s.H*s.W {
				t.Fatalf("inconsistent set: N=%d of %d, %d×%d×%d, %d values", s.N, total, s.C, s.H, s.W, len(s.Images))
			}
		}
		r, k, err := sniff(bytes.NewReader(data))
		if err != nil {
			return
		}
		var labels []int
		switch k {
		case kindIDX:
			labels, err = loadIDXLabels(r)
		case kindNPY:
			labels, err = npyLabels(r)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("bad error %q", err)
		}
		for _, l := range labels {
			if l < 0 {
				t.Fatalf("negative label %d", l)
			}
		}
	})
}

package dataset

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"io"
	"path/filepath"
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
				len(s.Floats()) != s.N*s.C*s.H*s.W {
				t.Fatalf("inconsistent set: N=%d of %d, %d×%d×%d, %d values", s.N, total, s.C, s.H, s.W, len(s.Floats()))
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

// FuzzLoadFolder feeds arbitrary bytes as an image file of a folder (PNG or JPEG by name, in a
// class folder or not) to Load: nothing may panic, an image that claims huge dimensions is
// refused before it is decoded, every error is one line, and a success is a consistent Set.
func FuzzLoadFolder(f *testing.F) {
	f.Add(pngBytes(f, constImage(3, 2, color.NRGBA{10, 20, 30, 255})), false, false)
	f.Add(jpegBytes(f, constImage(5, 4, color.NRGBA{200, 0, 0, 255})), true, true)
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x7f\xff\xff\xff\x7f\xff\xff\xff\x08\x02\x00\x00\x00"), false, true)
	f.Fuzz(func(t *testing.T, data []byte, jpegName, class bool) {
		// Images the loader accepts but that take seconds to decode (up to maxPixels) would slow the
		// fuzzer to a crawl; claims beyond maxPixels are still refused cheaply and stay in.
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			if px := int64(cfg.Width) * int64(cfg.Height); px > 1<<20 && px <= maxPixels {
				return
			}
		}
		dir := t.TempDir()
		name := "a.png"
		if jpegName {
			name = "a.jpg"
		}
		if class {
			name = filepath.Join("cat", name)
		}
		writeFile(t, dir, name, data)
		s, err := Load(dir, "", Options{Channels: 3, Height: 4, Width: 4})
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "data: ") {
				t.Fatalf("bad error %q", msg)
			}
			return
		}
		if s.N != 1 || len(s.Floats()) != 3*4*4 || class && len(s.Labels) != 1 {
			t.Fatalf("inconsistent set: N=%d, %d values, labels %v", s.N, len(s.Floats()), s.Labels)
		}
	})
}

package dataset

import (
	"image/color"
	"testing"
)

// BenchmarkLoadIDXGz loads 10000 gzipped 28×28 images (Fashion-MNIST's test set size).
func BenchmarkLoadIDXGz(b *testing.B) {
	p := writeFile(b, b.TempDir(), "x.idx.gz", gz(idxBytes(idxImages, []uint32{10000, 28, 28}, ramp(10000*784, 0))))
	b.SetBytes(10000 * 784)
	for b.Loop() {
		if _, err := Load(p, "", Options{Channels: 1, Height: 28, Width: 28}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadFolder decodes and resizes 32 PNGs of 256×192 to 3×224×224.
func BenchmarkLoadFolder(b *testing.B) {
	dir := b.TempDir()
	png := pngBytes(b, constImage(256, 192, color.NRGBA{200, 100, 50, 255}))
	for i := 0; i < 32; i++ {
		writeFile(b, dir, string(rune('a'+i%26))+string(rune('a'+i/26))+".png", png)
	}
	for b.Loop() {
		if _, err := Load(dir, "", Options{Channels: 3, Height: 224, Width: 224}); err != nil {
			b.Fatal(err)
		}
	}
}

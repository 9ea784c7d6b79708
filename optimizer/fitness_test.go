package optimizer

import (
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// TestFitnessImagesDisjoint: the four sets never share an image, the scoring sets get the most
// images, and small calibration sets lose the finalists' judge before the cheap fitness scores on
// the images it repaired on.
func TestFitnessImagesDisjoint(t *testing.T) {
	for _, tc := range []struct {
		n                     int
		repair, score, cr, cs int // -1: the set is nil
	}{
		{6000, 128, 1024, 512, 2048},
		{4000, 128, 1024, 512, 2048},
		{3000, 128, 957, 512, 1403},
		{1200, 128, 357, 357, 358},
		{300, 128, 172, -1, -1},
		{100, 50, 50, -1, -1},
	} {
		pixels := make([]float32, tc.n)
		for i := range pixels {
			pixels[i] = float32(i) // each image's one pixel is its index
		}
		calib := dataset.NewSet(tc.n, 1, 1, 1, pixels)
		fs := FitnessImages(calib)
		seen := map[float32]bool{}
		for i, c := range []struct {
			set  *dataset.Set
			want int
		}{{fs.Repair, tc.repair}, {fs.Score, tc.score}, {fs.ConfirmRepair, tc.cr}, {fs.ConfirmScore, tc.cs}} {
			if c.set == nil {
				if c.want >= 0 {
					t.Errorf("%d images: set %d is nil, want %d images", tc.n, i, c.want)
				}
				continue
			}
			if c.set.N != c.want {
				t.Errorf("%d images: set %d has %d images, want %d", tc.n, i, c.set.N, c.want)
			}
			for _, v := range c.set.Floats() {
				if seen[v] {
					t.Errorf("%d images: image %v is in two sets", tc.n, v)
				}
				seen[v] = true
			}
		}
	}
}

// TestDataFitnessOnMaps: the search's data fitness works on a model whose output is a Sigmoid
// map (the bundled U-Net): the unshrunk model scores about zero divergence, and a model cut to half of
// every group scores worse, by the cheap fitness and by the finalists' judge (the full repair).
func TestDataFitnessOnMaps(t *testing.T) {
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "dense", "unet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	calib, err := dataset.Load(filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz"), "",
		dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: 600})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewDataFitness(a, FitnessImages(calib), 64, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k := f.teacher.Kinds; len(k) != 1 || k[0].Kind != KindMap || k[0].Activation != "Sigmoid" {
		t.Fatalf("the U-Net's output reads as %+v, want a Sigmoid map", k)
	}
	full, half := Widths{}, Widths{}
	for _, g := range a.Prunable() {
		full[g.ID], half[g.ID] = g.Channels, max(1, g.Channels/2)
	}
	sFull, err := f.Score(full)
	if err != nil {
		t.Fatal(err)
	}
	sHalf, err := f.Score(half)
	if err != nil {
		t.Fatal(err)
	}
	cHalf, err := f.Confirm(half)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fitness: full %.5f, half %.5f; finalist judge at half %.5f", sFull, sHalf, cHalf)
	// The full-width model is refit too (on 128 images), which moves it a little off the original.
	if sFull < -0.005 || sHalf >= sFull || cHalf >= sFull {
		t.Errorf("fitness full %.5f, half %.5f, judged %.5f: want about 0 for the original and less for the cut", sFull, sHalf, cHalf)
	}
}

package optimizer

import (
	"testing"

	"github.com/chanopt/chanopt/dataset"
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

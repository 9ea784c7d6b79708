package optimizer

import (
	"slices"
	"testing"

	"github.com/chanopt/chanopt/rewrite"
)

// TestTopKBlocks checks the three ways a group's channels are picked: the best channels, the best
// of each block of a grouped conv that thins its blocks equally, and the best blocks whole (by
// summed score) where blocks go whole.
func TestTopKBlocks(t *testing.T) {
	scores := []float64{5, 0, 1, 9, 2, 3, 8, 4}
	blockOf := []int{0, 0, 1, 1, 2, 2, 3, 3} // block sums 5, 10, 5, 12
	cases := []struct {
		name string
		g    *rewrite.Group
		k    int
		want []int
	}{
		{"plain", &rewrite.Group{Channels: 8}, 3, []int{0, 3, 6}},
		{"thinned blocks", &rewrite.Group{Channels: 8, Blocks: 4, BlockOf: blockOf}, 4, []int{0, 3, 5, 6}},
		{"whole blocks", &rewrite.Group{Channels: 8, Blocks: 4, BlockOf: blockOf, Whole: true}, 4, []int{2, 3, 6, 7}},
		{"whole blocks, tie to the lower", &rewrite.Group{Channels: 8, Blocks: 4, BlockOf: blockOf, Whole: true}, 6, []int{0, 1, 2, 3, 6, 7}},
	}
	for _, tc := range cases {
		if got := TopK(scores, tc.k, tc.g); !slices.Equal(got, tc.want) {
			t.Errorf("%s: TopK(%d) = %v, want %v", tc.name, tc.k, got, tc.want)
		}
		if got := widthUnit(tc.g, 1); got != tc.g.Step() {
			t.Errorf("%s: width unit %d, want the group's step %d", tc.name, got, tc.g.Step())
		}
	}
	if got := widthUnit(&rewrite.Group{Channels: 104, Blocks: 13, BlockOf: make([]int, 104), Whole: true}, 16); got != 16 {
		t.Errorf("RegNet's 13 blocks of 8 on multiples of 16: unit %d, want 16", got)
	}
}

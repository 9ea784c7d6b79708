package latency

import (
	"slices"
	"testing"

	"github.com/chanopt/chanopt/rewrite"
)

// TestSpreadChannels: the calibration cut keeps channels spread over the group (and over each
// block of a grouped conv), so a Split the group runs through keeps some of every output; the
// first w channels alone emptied resnext's second Split output.
func TestSpreadChannels(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *rewrite.Group
		w    int
		want []int
	}{
		{"plain", &rewrite.Group{Channels: 8}, 4, []int{0, 2, 4, 6}},
		{"odd", &rewrite.Group{Channels: 6}, 4, []int{0, 1, 3, 4}},
		{"all", &rewrite.Group{Channels: 3}, 3, []int{0, 1, 2}},
		{"blocks", &rewrite.Group{Channels: 8, Blocks: 2, BlockOf: []int{0, 0, 0, 0, 1, 1, 1, 1}}, 4, []int{0, 2, 4, 6}},
	} {
		if got := spreadChannels(tc.g, tc.w); !slices.Equal(got, tc.want) {
			t.Errorf("%s: kept %v, want %v", tc.name, got, tc.want)
		}
	}
}

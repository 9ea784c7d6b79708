package latency

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/chanopt/chanopt/rewrite"
)

func TestLadder(t *testing.T) {
	for _, tc := range []struct {
		full, unit int
		want       []int
	}{
		{3, 1, []int{3}},
		{16, 1, []int{8, 16}},
		// Every multiple of 8 up to 64, and the probes 4 and 1 past the middle (40 is on the grid).
		{64, 1, []int{8, 16, 24, 32, 33, 36, 40, 48, 56, 64}},
		// Multiples of 16 at eighths of the width, probes 8, 4 and 1 past the middle.
		{256, 1, []int{32, 64, 96, 128, 129, 132, 136, 160, 192, 224, 256}},
		{1000, 1, []int{128, 256, 368, 496, 497, 500, 504, 624, 752, 880, 1000}},
		// A grouped conv of 32 blocks keeps multiples of 32: the probes fall back onto rungs.
		{256, 32, []int{32, 64, 96, 128, 160, 192, 224, 256}},
		// A flattened input with 49 positions per channel.
		{49 * 64, 49, nil},
	} {
		got := ladder(tc.full, tc.unit)
		if tc.want == nil {
			for _, w := range got {
				if w%tc.unit != 0 || w > tc.full {
					t.Errorf("ladder(%d, %d) = %v: %d is not a multiple of the unit within the width", tc.full, tc.unit, got, w)
				}
			}
			if got[len(got)-1] != tc.full || len(got) < 8 {
				t.Errorf("ladder(%d, %d) = %v: want the full width last and at least 8 rungs", tc.full, tc.unit, got)
			}
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ladder(%d, %d) = %v, want %v", tc.full, tc.unit, got, tc.want)
		}
	}
}

func TestAt(t *testing.T) {
	// A ladder up to 128: the grid at 32, 64, 128, and probes off it that cost 4/3, 2 and 3 times
	// the grid's interpolation at their widths.
	ladder := []Point{{32, 1}, {64, 2}, {65, 2.03125 * 3}, {68, 2.125 * 2}, {72, 2.25 * 4 / 3}, {128, 4}}
	for _, tc := range []struct {
		w    int
		want float64
	}{
		{128, 4},
		{96, 3},                // on the grid: linear between 64 and 128
		{16, 0.5},              // below the grid: proportional
		{208, 4 * 208 / 128.0}, // beyond the widest: proportional
		{72, 3},                // the probe itself
		{104, 3.25 * 4 / 3},    // a multiple of 8, off the grid of 16: the 8-probe's cost
		{100, 3.125 * 2},       // a multiple of 4: the 4-probe's cost
		{99, 3.09375 * 3},      // odd: the odd probe's cost
		{98, 3.0625 * 3},       // even but not a multiple of 4: the odd probe's cost too
	} {
		if got := at(ladder, 128, tc.w); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("at(%d) = %v, want %v", tc.w, got, tc.want)
		}
	}
	// Up to 64, every multiple of 8 is on the grid.
	small := []Point{{8, 1}, {16, 2}, {33, 10}, {64, 8}}
	if got := at(small, 64, 24); got != 3 {
		t.Errorf("at(24) on a small ladder = %v, want 3 (interpolated)", got)
	}
}

func TestSideKept(t *testing.T) {
	s := Side{Full: 96, Groups: []rewrite.GroupID{3, 5}, Channels: []int{32, 48}, Multiplier: 1}
	flat := Side{Full: 49 * 64, Groups: []rewrite.GroupID{2}, Channels: []int{64}, Multiplier: 49}
	for _, tc := range []struct {
		side   Side
		widths map[rewrite.GroupID]int
		want   int
	}{
		{s, nil, 96},
		{s, map[rewrite.GroupID]int{3: 16}, 80},
		{s, map[rewrite.GroupID]int{3: 16, 5: 8, 9: 1}, 40}, // 16 channels outside any group stay
		{flat, map[rewrite.GroupID]int{2: 32}, 49 * 32},
		{s, map[rewrite.GroupID]int{3: 0, 5: 0}, 16},
	} {
		if got := tc.side.kept(tc.widths); got != tc.want {
			t.Errorf("%+v kept at %v = %d, want %d", tc.side, tc.widths, got, tc.want)
		}
	}
}

// TestPredict checks the layers combine as documented: each layer scaled by its input and output
// ladders (depthwise by its one ladder), the sum scaled to the whole model's time.
func TestPredict(t *testing.T) {
	tb := &Table{
		FullMS: 10,
		Kernels: []Kernel{
			{Op: "Conv", In: 32, Out: 64, FullMS: 4, InLadder: []Point{{16, 2}, {32, 4}}, OutLadder: []Point{{32, 1}, {64, 4}}},
			{Op: "Conv", In: 64, Out: 64, Diagonal: true, FullMS: 1, OutLadder: []Point{{32, 0.25}, {64, 1}}},
		},
		Layers: []Layer{
			{Kernel: 0, In: Side{Full: 32, Groups: []rewrite.GroupID{0}, Channels: []int{32}}, Out: Side{Full: 64, Groups: []rewrite.GroupID{1}, Channels: []int{64}}},
			{Kernel: 1, In: Side{Full: 64}, Out: Side{Full: 64, Groups: []rewrite.GroupID{1}, Channels: []int{64}}},
		},
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	for _, tc := range []struct {
		widths map[rewrite.GroupID]int
		want   time.Duration
	}{
		{nil, ms(10)},
		{map[rewrite.GroupID]int{0: 16}, ms(10 * 3 / 5.0)},                 // layer 0 halves: (2 + 1) / (4 + 1)
		{map[rewrite.GroupID]int{1: 32}, ms(10 * (1 + 0.25) / 5)},          // layer 0 ×1/4, depthwise ×1/4
		{map[rewrite.GroupID]int{0: 16, 1: 32}, ms(10 * (0.5 + 0.25) / 5)}, // layer 0: 4 × 1/2 × 1/4
	} {
		if got := tb.Predict(tc.widths); (got - tc.want).Abs() > time.Microsecond {
			t.Errorf("Predict(%v) = %v, want %v", tc.widths, got, tc.want)
		}
	}
}

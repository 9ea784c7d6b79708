package latency

import "sort"

// ladderFractions are the shares of the full width measured, each rounded to a multiple of 16: the
// AVX-512 NCHWc block, where ONNX Runtime's convolutions are fastest.
var ladderFractions = []float64{1.0 / 8, 1.0 / 4, 3.0 / 8, 1.0 / 2, 5.0 / 8, 3.0 / 4, 7.0 / 8}

// probeOffsets step off the middle rung to a multiple of 8 that is not one of 16 (AVX2's block), a
// multiple of 4 that is not one of 8, and an odd width: what leaving each grid costs is measured
// once per ladder and applied to every width of the same kind.
var probeOffsets = []int{8, 4, 1}

// smallLadder is the width up to which every multiple of 8 is measured.
const smallLadder = 64

// onGrid says whether width w of a ladder up to full is interpolated between measured neighbours
// (rather than scaled by a probe's cost of leaving the grid).
func onGrid(w, full int) bool {
	return w == full || w%16 == 0 || (full <= smallLadder && w%8 == 0)
}

// kind groups off-grid widths by the block they miss: 8 (a multiple of 8), 4, or 1 (anything else).
func kind(w int) int {
	switch {
	case w%8 == 0:
		return 8
	case w%4 == 0:
		return 4
	}
	return 1
}

// ladder returns the widths to time for a side of full channels whose kept count must be a
// multiple of unit (a grouped conv's blocks, a flattened input's positions per channel), sorted,
// full included.
func ladder(full, unit int) []int {
	if unit < 1 {
		unit = 1
	}
	set := map[int]bool{full: true}
	add := func(w int) {
		w = w / unit * unit
		if w >= unit && w < full {
			set[w] = true
		}
	}
	if full <= smallLadder {
		for w := 8; w < full; w += 8 {
			add(w)
		}
	} else {
		for _, f := range ladderFractions {
			add(int(float64(full)*f/16+0.5) * 16)
		}
	}
	if full >= 32 {
		mid := int(float64(full)/32+0.5) * 16
		for _, d := range probeOffsets {
			add(mid + d)
		}
	}
	out := make([]int, 0, len(set))
	for w := range set {
		out = append(out, w)
	}
	sort.Ints(out)
	return out
}

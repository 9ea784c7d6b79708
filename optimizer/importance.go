package optimizer

import (
	"math"
	"sort"

	"github.com/chanopt/chanopt/rewrite"
)

// L1Importance scores each channel of each group by the L1 norm of its producers' filters, summed
// over every producer in the group (a residual group sums the filters of both branches). Each
// producer's norms are divided by their mean first, so a stem conv with 9 weights per filter counts
// as much as a block conv with 576.
func L1Importance(a *rewrite.Analysis) map[rewrite.GroupID][]float64 {
	imp := map[rewrite.GroupID][]float64{}
	for _, g := range a.Groups {
		imp[g.ID] = make([]float64, g.Channels)
	}
	type key struct {
		g    rewrite.GroupID
		node string
	}
	norms := map[key][]float64{}
	var order []key
	for _, p := range a.ProducerSlices() {
		k := key{p.Group, p.Node}
		if norms[k] == nil {
			norms[k] = make([]float64, len(imp[p.Group]))
			order = append(order, k)
		}
		s := 0.0
		for _, v := range p.Values {
			s += math.Abs(float64(v))
		}
		norms[k][p.Channel] += s
	}
	for _, k := range order {
		n := norms[k]
		mean := 0.0
		for _, v := range n {
			mean += v
		}
		mean /= float64(len(n))
		if mean == 0 {
			continue
		}
		for i, v := range n {
			imp[k.g][i] += v / mean
		}
	}
	return imp
}

// TopK returns the indices of the k largest scores of g's channels, ascending; ties keep the lower
// index. Where a grouped conv splits g into blocks it keeps the k/Step() best blocks whole (by
// their summed scores) when they go whole, or the k/Blocks best channels of each block.
func TopK(scores []float64, k int, g *rewrite.Group) []int {
	if g != nil && g.Blocks > 1 {
		members := g.BlockMembers()
		var out []int
		if g.Whole {
			sums := make([]float64, g.Blocks)
			for c, b := range g.BlockOf {
				sums[b] += scores[c]
			}
			for _, b := range topOf(sums, index(g.Blocks), max(k/g.Step(), 1)) {
				out = append(out, members[b]...)
			}
		} else {
			for _, m := range members {
				out = append(out, topOf(scores, m, max(k/g.Blocks, 1))...)
			}
		}
		sort.Ints(out)
		return out
	}
	out := topOf(scores, index(len(scores)), k)
	sort.Ints(out)
	return out
}

// index is 0, 1, …, n-1.
func index(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func topOf(scores []float64, idx []int, k int) []int {
	idx = append([]int(nil), idx...)
	sort.SliceStable(idx, func(i, j int) bool { return scores[idx[i]] > scores[idx[j]] })
	if k > len(idx) {
		k = len(idx)
	}
	return idx[:k]
}

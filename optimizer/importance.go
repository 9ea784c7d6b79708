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

// TopK returns the indices of the k largest scores, ascending; ties keep the lower index. With
// blocks > 1 it takes k/blocks from each block.
func TopK(scores []float64, k int, blocks int, blockOf []int) []int {
	if blocks > 1 {
		per := k / blocks
		if per < 1 {
			per = 1
		}
		var out []int
		for b := 0; b < blocks; b++ {
			var idx []int
			for i := range scores {
				if blockOf[i] == b {
					idx = append(idx, i)
				}
			}
			out = append(out, topOf(scores, idx, per)...)
		}
		sort.Ints(out)
		return out
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	out := topOf(scores, idx, k)
	sort.Ints(out)
	return out
}

func topOf(scores []float64, idx []int, k int) []int {
	idx = append([]int(nil), idx...)
	sort.SliceStable(idx, func(i, j int) bool { return scores[idx[i]] > scores[idx[j]] })
	if k > len(idx) {
		k = len(idx)
	}
	return idx[:k]
}

package optimizer

import (
	"github.com/chanopt/chanopt/rewrite"
)

// GroupScore is the CONet view of one group: the mean of the metrics of the layer sides that touch
// its channels (the output side of its producers, the input side of its consumers).
type GroupScore struct {
	ID               rewrite.GroupID
	Rank, KG, MC, QC float64
	Sides            int // how many layer sides were averaged (0: no metric touches the group)
}

// GroupScores averages layer metrics over each group's producers and consumers.
func GroupScores(a *rewrite.Analysis, layers []LayerMetrics) map[rewrite.GroupID]GroupScore {
	return groupScores(a, layers, sidesAveraged)
}

// sideWeighting says how the layer sides touching a group count in its score.
type sideWeighting int

const (
	sidesAveraged        sideWeighting = iota // every side alike (CONet's mean)
	sidesWeightedByReach                      // each side by ReachIn / ReachOut
)

func groupScores(a *rewrite.Analysis, layers []LayerMetrics, weighting sideWeighting) map[rewrite.GroupID]GroupScore {
	byName := map[string]LayerMetrics{}
	for _, l := range layers {
		byName[l.Name] = l
	}
	out := map[rewrite.GroupID]GroupScore{}
	for _, g := range a.Groups {
		s := GroupScore{ID: g.ID}
		total := 0.0
		add := func(rank, kg, mc, qc, reach float64) {
			w := 1.0
			if weighting == sidesWeightedByReach {
				w = reach
			}
			s.Rank += w * rank
			s.KG += w * kg
			s.MC += w * mc
			s.QC += w * qc
			s.Sides++
			total += w
		}
		for _, p := range g.Producers {
			if l, ok := byName[p]; ok && l.HasOut {
				add(l.RankOut, l.KGOut, l.MCOut, l.QCOut, l.ReachOut)
			}
		}
		for _, c := range g.Consumers {
			if l, ok := byName[c]; ok && l.HasIn {
				add(l.RankIn, l.KGIn, l.MCIn, l.QCIn, l.ReachIn)
			}
		}
		if total > 0 {
			s.Rank, s.KG, s.MC, s.QC = s.Rank/total, s.KG/total, s.MC/total, s.QC/total
		} else {
			s.Sides = 0
		}
		out[g.ID] = s
	}
	return out
}

// Retention is, for each prunable group, the share of its producers' spectral energy that w
// channels could carry, averaged over the producers: Σ_{i<w} s_i² / Σ s_i² over the singular values
// s of each producer's output-side unfolding (computed with the layer metrics). A low-rank group
// keeps most of its energy in few channels, so cutting it costs little: CONet's reason to shrink
// low-rank layers first. Groups without a producer metric get a straight line.
func Retention(a *rewrite.Analysis, layers []LayerMetrics) map[rewrite.GroupID][]float64 {
	byName := map[string][]float64{}
	for _, l := range layers {
		if l.SingularOut != nil {
			byName[l.Name] = l.SingularOut
		}
	}
	out := map[rewrite.GroupID][]float64{}
	for _, g := range a.Groups {
		if !g.Prunable {
			continue
		}
		curve := make([]float64, g.Channels+1)
		n := 0
		for _, p := range g.Producers {
			s, ok := byName[p]
			if !ok {
				continue
			}
			total := 0.0
			for _, v := range s {
				total += v * v
			}
			if total == 0 {
				continue
			}
			n++
			acc := 0.0
			for w := 1; w <= g.Channels; w++ {
				if w-1 < len(s) {
					acc += s[w-1] * s[w-1]
				}
				curve[w] += acc / total
			}
		}
		for w := range curve {
			if n > 0 {
				curve[w] /= float64(n)
			} else {
				curve[w] = float64(w) / float64(g.Channels)
			}
		}
		out[g.ID] = curve
	}
	return out
}

package optimizer

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/chanopt/chanopt/rewrite"
)

// Guide names what biases the annealer's proposals: which groups give channels away (donors) and
// which take them (receivers). Every guide draws 70% of its proposals biased and the rest uniform;
// a group's donor weight is its redundancy r plus 0.05 and its receiver weight 1 − r plus 0.05.
// The rank guides use the rank itself (r = 1 − rank, or rank when reversed), as the annealer always
// has: on the data-free fitness this found better widths than weighting by position (5 of the 6
// bundled models, seed 7, 1000 proposals). QC, MC and sensitivity have no common scale, so their
// r is the group's position in the guide's order (1 first, 0 last). Acceptance and the final pick
// are the fitness's in every case.
type Guide string

const (
	// GuideRank: low EVBMF rank gives (CONet: a low-rank layer's channels are redundant).
	GuideRank Guide = "rank"
	// GuideRankWeighted is GuideRank with each layer side weighted, in the group's mean, by the
	// share of its channels its unfolding can reach: min(1, columns/rows). A depthwise conv's
	// output side (C × k, rank at most k/C) and a Gemm's input side after a Flatten (C·h·w rows)
	// then count little; CONetV2 leaves depthwise convs out of its lists.
	GuideRankWeighted Guide = "rank-weighted"
	// GuideQC: low QC (atan2 of rank and 1 − 1/MC, the CONetV2 metric) gives.
	GuideQC Guide = "qc"
	// GuideMC: a high mapping condition σ̂₁/σ̂_K gives (K = 0 first).
	GuideMC Guide = "mc"
	// GuideSensitivity: the groups whose halving alone costs the least measured agreement give
	// (Sensitivities on calibration images, as `chanopt analyze --data` measures them).
	GuideSensitivity Guide = "sensitivity"
	// GuideReversed: high rank gives, the opposite of CONet's bias.
	GuideReversed Guide = "reversed"
	// GuideNone draws every proposal uniformly.
	GuideNone Guide = "none"
)

// Guides lists every guide, the default first.
var Guides = []Guide{GuideRank, GuideRankWeighted, GuideQC, GuideMC, GuideSensitivity, GuideReversed, GuideNone}

// ParseGuide checks a guide's name ("" is the default, GuideRank).
func ParseGuide(s string) (Guide, error) {
	if s == "" {
		return GuideRank, nil
	}
	for _, g := range Guides {
		if string(g) == s {
			return g, nil
		}
	}
	names := make([]string, len(Guides))
	for i, g := range Guides {
		names[i] = string(g)
	}
	return "", fmt.Errorf("guide %q: want one of %s", s, strings.Join(names, ", "))
}

// guideRedundancy gives each group its donor weight's base for the guide: 1 for the group the
// guide would shrink first, 0 for the last, by position in the guide's order (ties share their
// mean position). Nil for GuideNone. sens holds measured drops by group (GuideSensitivity only);
// ret the retention curves, whose half-energy width stands in for the rank of a group no layer
// metric touches.
func guideRedundancy(guide Guide, a *rewrite.Analysis, groups []*rewrite.Group, layers []LayerMetrics,
	ret map[rewrite.GroupID][]float64, sens map[rewrite.GroupID]float64) (map[rewrite.GroupID]float64, error) {
	if guide == GuideNone {
		return nil, nil
	}
	weighting := sidesAveraged
	if guide == GuideRankWeighted {
		weighting = sidesWeightedByReach
	}
	scores := groupScores(a, layers, weighting)
	// key: low = give first.
	key := map[rewrite.GroupID]float64{}
	raw := map[rewrite.GroupID]float64{} // the rank guides' redundancy
	for _, g := range groups {
		sc, ok := scores[g.ID]
		measured := ok && sc.Sides > 0
		rank := halfEnergyRank(ret[g.ID])
		if measured {
			rank = sc.Rank
		}
		switch guide {
		case GuideRank, GuideRankWeighted:
			raw[g.ID] = 1 - rank
		case GuideReversed:
			raw[g.ID] = rank
		case GuideQC:
			key[g.ID] = math.NaN()
			if measured {
				key[g.ID] = sc.QC
			}
		case GuideMC:
			key[g.ID] = math.NaN()
			if measured {
				// MC = 0 means K = 0: nothing above the noise, the most redundant.
				key[g.ID] = -sc.MC
				if sc.MC == 0 {
					key[g.ID] = math.Inf(-1)
				}
			}
		case GuideSensitivity:
			d, ok := sens[g.ID]
			if !ok {
				d = math.NaN()
			}
			key[g.ID] = d
		default:
			return nil, fmt.Errorf("guide %q: want one of %v", guide, Guides)
		}
	}
	if guide == GuideSensitivity && len(sens) == 0 {
		return nil, fmt.Errorf("the sensitivity guide needs measured sensitivities (calibration data)")
	}
	switch guide {
	case GuideRank, GuideRankWeighted, GuideReversed:
		return raw, nil
	}
	return positionWeights(groups, key), nil
}

// positionWeights maps each group's key to 1 − its position in ascending order (0 to 1, ties at
// their mean); a NaN key (nothing measured) sits in the middle.
func positionWeights(groups []*rewrite.Group, key map[rewrite.GroupID]float64) map[rewrite.GroupID]float64 {
	var ids []rewrite.GroupID
	out := map[rewrite.GroupID]float64{}
	for _, g := range groups {
		if math.IsNaN(key[g.ID]) {
			out[g.ID] = 0.5
			continue
		}
		ids = append(ids, g.ID)
	}
	sort.SliceStable(ids, func(i, j int) bool { return key[ids[i]] < key[ids[j]] })
	n := len(ids)
	for i := 0; i < n; {
		j := i
		for j+1 < n && key[ids[j+1]] == key[ids[i]] {
			j++
		}
		p := 0.5
		if n > 1 {
			p = float64(i+j) / 2 / float64(n-1)
		}
		for k := i; k <= j; k++ {
			out[ids[k]] = 1 - p
		}
		i = j + 1
	}
	return out
}

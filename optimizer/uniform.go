package optimizer

import (
	"fmt"
	"maps"
	"math"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// Width rounds a target channel count for a group: a multiple of roundTo and of the group's blocks,
// at least one unit, at most the group's channels.
func Width(g *rewrite.Group, target float64, roundTo int) int {
	unit := widthUnit(g, roundTo)
	if unit >= g.Channels {
		return g.Channels
	}
	w := int(math.Round(target/float64(unit))) * unit
	if w < unit {
		w = unit
	}
	if w > g.Channels {
		w = g.Channels
	}
	return w
}

// widthUnit is the step a group's width moves in: a multiple of --round-to and of the group's
// own step (a grouped convolution's blocks).
func widthUnit(g *rewrite.Group, roundTo int) int {
	return lcm(max(roundTo, 1), g.Step())
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcm(a, b int) int { return a / gcd(a, b) * b }

// importanceOrL1 is imp, or the filters' L1 norms (L1Importance) where there is none.
func importanceOrL1(imp map[rewrite.GroupID][]float64, a *rewrite.Analysis) map[rewrite.GroupID][]float64 {
	if imp == nil {
		return L1Importance(a)
	}
	return imp
}

// KeepWidths picks, for each group, the given number of channels by importance.
func KeepWidths(a *rewrite.Analysis, imp map[rewrite.GroupID][]float64, widths map[rewrite.GroupID]int) rewrite.Keep {
	keep := rewrite.Keep{}
	for _, g := range a.Groups {
		w, ok := widths[g.ID]
		if !ok || w >= g.Channels || !g.Prunable {
			continue
		}
		keep[g.ID] = TopK(imp[g.ID], w, g)
	}
	return keep
}

// UniformWidths keeps the same fraction r of every prunable group.
func UniformWidths(a *rewrite.Analysis, r float64, roundTo int) map[rewrite.GroupID]int {
	w := map[rewrite.GroupID]int{}
	for _, g := range a.Groups {
		if g.Prunable {
			w[g.ID] = Width(g, r*float64(g.Channels), roundTo)
		}
	}
	return w
}

// Slim is a slim model with what it keeps and what it costs.
type Slim struct {
	Model  *onnx.Model
	Keep   rewrite.Keep
	Widths map[rewrite.GroupID]int
	Costs  Costs
}

// ShrinkUniform cuts every prunable group by the same fraction, the largest that meets the budget,
// keeping each group's channels of highest L1 importance.
func ShrinkUniform(a *rewrite.Analysis, b Budget, inputs map[string]onnx.Shape, roundTo int) (*Slim, error) {
	return ShrinkUniformBy(a, b, inputs, roundTo, nil)
}

// ShrinkUniformBy is ShrinkUniform keeping the channels of highest imp (nil: L1Importance).
func ShrinkUniformBy(a *rewrite.Analysis, b Budget, inputs map[string]onnx.Shape, roundTo int, imp map[rewrite.GroupID][]float64) (*Slim, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if b.Kind == Latency {
		return nil, fmt.Errorf("the uniform split takes a macs or params budget")
	}
	base, err := Measure(a.Model, inputs)
	if err != nil {
		return nil, err
	}
	target := b.Ratio * base.Of(b.Kind)
	if imp == nil {
		imp = L1Importance(a)
	}
	sliced := func(widths map[rewrite.GroupID]int) (*Slim, error) {
		keep := KeepWidths(a, imp, widths)
		m, err := a.Slice(keep)
		if err != nil {
			return nil, err
		}
		c, err := Measure(m, inputs)
		if err != nil {
			return nil, err
		}
		return &Slim{Model: m, Keep: keep, Widths: widths, Costs: c}, nil
	}
	try := func(r float64) (*Slim, error) { return sliced(UniformWidths(a, r, roundTo)) }
	best, err := try(1)
	if err != nil {
		return nil, err
	}
	if best.Costs.Of(b.Kind) <= target {
		return best, nil
	}
	lo, hi := 0.0, 1.0
	best = nil
	for i := 0; i < 30 && hi-lo > 1e-4; i++ {
		mid := (lo + hi) / 2
		r, err := try(mid)
		if err != nil {
			return nil, err
		}
		if r.Costs.Of(b.Kind) <= target {
			lo, best = mid, r
		} else {
			hi = mid
		}
	}
	if best == nil {
		r, err := try(0)
		if err != nil {
			return nil, err
		}
		if r.Costs.Of(b.Kind) > target {
			return nil, fmt.Errorf("budget %v cannot be met: with every prunable group at its minimum width the model keeps %.1f%% of its %s (pinned groups hold the rest)",
				b, 100*r.Costs.Of(b.Kind)/base.Of(b.Kind), b.Kind)
		}
		best = r
	}
	// The fraction moves every group's width at once, so on a coarse grid the largest fraction
	// that fits can land a whole step under the budget (resnet8 on multiples of 16: 0.42 of the
	// MACs for 0.5 asked). Filling back keeps the cut to what was asked.
	nodeMACs, err := onnx.NodeMACsAt(a.Model, inputs)
	if err != nil {
		return nil, err
	}
	wc := a.WidthCost(nodeMACs)
	cost := func(w map[rewrite.GroupID]int) float64 {
		macs, params := wc.Eval(w)
		if b.Kind == Params {
			return params
		}
		return macs
	}
	filled := fillUniform(a, best.Widths, roundTo, func(w map[rewrite.GroupID]int) bool { return cost(w) <= target })
	if filled == nil {
		return best, nil
	}
	r, err := sliced(filled)
	if err != nil {
		return nil, err
	}
	if r.Costs.Of(b.Kind) <= target { // the prediction is exact in the usual case; the slice decides
		best = r
	}
	return best, nil
}

// fillUniform grows the group furthest below the others' kept fraction by one unit, while fits
// allows, so that the split stays as even as the grid permits and lands just under the budget.
// It returns nil when no group can grow.
func fillUniform(a *rewrite.Analysis, widths map[rewrite.GroupID]int, roundTo int, fits func(map[rewrite.GroupID]int) bool) map[rewrite.GroupID]int {
	return fillToward(a, widths, roundTo, func(g *rewrite.Group) float64 { return float64(g.Channels) }, fits)
}

// fillToward is fillUniform with each group's fraction taken of ref(g) instead of its channels:
// the group furthest below its reference grows first.
func fillToward(a *rewrite.Analysis, widths map[rewrite.GroupID]int, roundTo int, ref func(*rewrite.Group) float64, fits func(map[rewrite.GroupID]int) bool) map[rewrite.GroupID]int {
	w := maps.Clone(widths)
	grown := false
	for {
		var next *rewrite.Group
		for _, g := range a.Groups {
			v, ok := w[g.ID]
			if !ok || v >= g.Channels {
				continue
			}
			w[g.ID] = min(v+widthUnit(g, roundTo), g.Channels)
			ok = fits(w)
			w[g.ID] = v
			if ok && (next == nil || float64(v)/ref(g) < float64(w[next.ID])/ref(next)) {
				next = g
			}
		}
		if next == nil {
			break
		}
		w[next.ID] = min(w[next.ID]+widthUnit(next, roundTo), next.Channels)
		grown = true
	}
	if !grown {
		return nil
	}
	return w
}

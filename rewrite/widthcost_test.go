package rewrite_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// TestWidthCostPredictsSlicedCost compares the width-only predictor with the cost of the model
// actually sliced at those widths.
func TestWidthCostPredictsSlicedCost(t *testing.T) {
	paths := append(testenv.BundledModelsIfAny(t), testenv.ZooModels(t)...)
	for _, p := range paths {
		m, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := rewrite.Groups(m)
		if err != nil {
			t.Fatal(err)
		}
		shapes, _ := onnx.BatchOne(m.Graph, nil)
		macs := nodeMACs(t, m, shapes)
		wc := a.WidthCost(macs)
		widths := map[rewrite.GroupID]int{}
		keep := rewrite.Keep{}
		for i, g := range a.Prunable() {
			if g.Blocks > 1 {
				continue
			}
			w := g.Channels * (3 + i%5) / 8
			if w < 1 {
				w = 1
			}
			widths[g.ID] = w
			// Channels spread evenly over the group, as importance-chosen ones are: the predictor
			// assumes a group's kept share is the same in every slice that takes part of it (a
			// Split of the group into halves).
			idx := make([]int, w)
			for j := range idx {
				idx[j] = j * g.Channels / w
			}
			keep[g.ID] = idx
		}
		pm, pp := wc.Eval(widths)
		slim, err := a.Slice(keep)
		if err != nil {
			t.Fatal(err)
		}
		real := cost(t, slim, shapes)
		em, ep := math.Abs(pm-float64(real.MACs))/float64(real.MACs), math.Abs(pp-float64(real.Params))/float64(real.Params)
		t.Logf("%s: predicted MACs %.0f vs %d (%.2g), params %.0f vs %d (%.2g)", filepath.Base(p), pm, real.MACs, em, pp, real.Params, ep)
		if em > 0.01 || ep > 0.02 {
			t.Errorf("%s: prediction off by %.3g (MACs), %.3g (params)", filepath.Base(p), em, ep)
		}
	}
}

func nodeMACs(t *testing.T, m *onnx.Model, shapes map[string]onnx.Shape) map[*onnx.Node]int64 {
	out, err := onnx.NodeMACsAt(m, shapes)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func cost(t *testing.T, m *onnx.Model, shapes map[string]onnx.Shape) onnx.Cost {
	r, err := onnx.CostAt(m, shapes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

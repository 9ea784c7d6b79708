package optimizer

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// TestUniformFillsToBudget checks that the uniform split never cuts more than asked: on every
// bundled model and grid, the result meets the budget and no group can grow by one more unit of
// the grid without breaking it (measured by slicing, not predicted). On a coarse grid the largest
// common fraction alone lands a whole step under the budget.
func TestUniformFillsToBudget(t *testing.T) {
	for _, name := range []string{"resnet8", "mobilenetv2_se", "resnext", "densenet"} {
		m, shapes, a := bundled(t, name)
		base, err := Measure(m, shapes)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []Budget{{Kind: MACs, Ratio: 0.5}, {Kind: Params, Ratio: 0.6}} {
			for _, grid := range []int{1, 8, 16} {
				t.Run(fmt.Sprintf("%s/%s/%d", name, b, grid), func(t *testing.T) {
					un, err := ShrinkUniform(a, b, shapes, grid)
					if err != nil && grid > 1 && strings.Contains(err.Error(), "cannot be met") {
						t.Logf("%v (groups narrower than the grid keep their width)", err)
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					nodeMACs, err := onnx.NodeMACsAt(m, shapes)
					if err != nil {
						t.Fatal(err)
					}
					wc := a.WidthCost(nodeMACs)
					target := b.Ratio * base.Of(b.Kind)
					got := un.Costs.Of(b.Kind)
					if got > target {
						t.Fatalf("keeps %.0f of %.0f %s, over the budget", got, base.Of(b.Kind), b.Kind)
					}
					for _, g := range a.Prunable() {
						w := un.Widths[g.ID]
						if w >= g.Channels {
							continue
						}
						grown := maps.Clone(un.Widths)
						grown[g.ID] = min(w+widthUnit(g, grid), g.Channels)
						sm, err := a.Slice(KeepWidths(a, L1Importance(a), grown))
						if err != nil {
							t.Fatal(err)
						}
						c, err := Measure(sm, shapes)
						if err != nil {
							t.Fatal(err)
						}
						macs, params := wc.Eval(grown)
						predicted := map[BudgetKind]float64{MACs: macs, Params: params}[b.Kind]
						if c.Of(b.Kind) <= target && predicted <= target {
							t.Errorf("group %d could keep %d channels, not %d, and still meet the budget (%.3f of the %s)",
								g.ID, grown[g.ID], w, c.Of(b.Kind)/base.Of(b.Kind), b.Kind)
						}
						if c.Of(b.Kind) <= target && predicted > target {
							// WidthCost over-predicts resnext's params by up to 1.2%
							// (its grouped convs' weights), so the fill stops a unit early.
							t.Logf("group %d: one more unit measures %.4f of the %s, predicted %.4f",
								g.ID, c.Of(b.Kind)/base.Of(b.Kind), b.Kind, predicted/base.Of(b.Kind))
							if predicted > 1.02*c.Of(b.Kind) {
								t.Errorf("the width cost over-predicts by more than 2%%")
							}
						}
					}
					t.Logf("%.3f of the %s", got/base.Of(b.Kind), b.Kind)
				})
			}
		}
	}
}

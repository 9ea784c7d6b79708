package optimizer

import (
	"testing"

	"github.com/chanopt/chanopt/rewrite"
)

// TestSpeedLimitPrefersFastWidths: under a MACs budget with a latency predictor in which some
// groups cost far more time per channel than their MACs say (as a depthwise conv's do in ONNX
// Runtime), the search keeps to allocations predicted faster than the MACs-only search's, while
// still keeping the MACs budget to within speedSlack, and reports the limit it kept under.
func TestSpeedLimitPrefersFastWidths(t *testing.T) {
	_, shapes, a := bundled(t, "mobilenetv2_se")
	// Every other prunable group is slow: ten times the time per channel of the others.
	slow := map[rewrite.GroupID]bool{}
	for i, g := range a.Prunable() {
		slow[g.ID] = i%2 == 0
	}
	speed := func(w Widths) float64 {
		sum := 0.0
		for _, g := range a.Prunable() {
			per := 1.0
			if slow[g.ID] {
				per = 10
			}
			sum += per * float64(w[g.ID]) / float64(g.Channels)
		}
		return sum
	}
	full := Widths{}
	for _, g := range a.Prunable() {
		full[g.ID] = g.Channels
	}
	budget := Budget{Kind: MACs, Ratio: 0.5}
	plain, err := Anneal(a, SearchOptions{Budget: budget, Inputs: shapes, Seed: 1, Iterations: 400})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := Anneal(a, SearchOptions{Budget: budget, Inputs: shapes, Seed: 1, Iterations: 400, Speed: speed})
	if err != nil {
		t.Fatal(err)
	}
	plainSpeed := speed(plain.Widths) / speed(full)
	t.Logf("predicted latency: MACs only %.3f (MACs %.3f), with the speed limit %.3f (limit %.3f, MACs %.3f)",
		plainSpeed, float64(plain.Costs.MACs)/plain.Base, fast.PredictedSpeed, fast.SpeedLimit, float64(fast.Costs.MACs)/fast.Base)
	if plain.SpeedLimit != 0 || plain.PredictedSpeed != 0 {
		t.Errorf("a search without a predictor reports a speed limit (%v, %v)", plain.SpeedLimit, plain.PredictedSpeed)
	}
	if fast.SpeedLimit <= 0 || fast.PredictedSpeed > fast.SpeedLimit+1e-9 {
		t.Errorf("speed limit %.3f, predicted %.3f: want a limit the result keeps", fast.SpeedLimit, fast.PredictedSpeed)
	}
	if fast.PredictedSpeed > plainSpeed-0.1 {
		t.Errorf("predicted latency %.3f with the limit, %.3f without: want it clearly lower", fast.PredictedSpeed, plainSpeed)
	}
	if got := float64(fast.Costs.MACs) / fast.Base; got > budget.Ratio || got < budget.Ratio-speedSlack-0.01 {
		t.Errorf("MACs kept %.3f: want the budget %.2f kept to within %.2f", got, budget.Ratio, speedSlack)
	}
}

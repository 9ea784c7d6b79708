package optimizer

import (
	"fmt"
	"math"
	"testing"

	"github.com/chanopt/chanopt/onnx"
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

// descentSetUp is an annealer over mobilenetv2_se under half its MACs on multiples of 8, with a
// predictor that prices groups unevenly and not in proportion to their width (so a uniform start
// is far from the fastest allocation), and the widest uniform start within the budget.
func descentSetUp(t *testing.T) (s *annealer, speed func(Widths) float64, full, w Widths) {
	t.Helper()
	_, shapes, a := bundled(t, "mobilenetv2_se")
	groups := a.Prunable()
	speed = func(w Widths) float64 {
		sum := 0.0
		for i, g := range groups {
			x := float64(w[g.ID]) / float64(g.Channels)
			sum += float64(1+4*(i%2)) * (0.5 + 0.5*x*x) * float64(g.Channels) / 16
		}
		return sum
	}
	base, err := onnx.NodeMACsAt(a.Model, shapes)
	if err != nil {
		t.Fatal(err)
	}
	s = &annealer{a: a, opt: SearchOptions{Budget: Budget{Kind: MACs, Ratio: 0.5}, Inputs: shapes, Speed: speed, RoundTo: 8},
		unit: map[rewrite.GroupID]int{}, wc: a.WidthCost(base), groups: groups}
	full, w = Widths{}, Widths{}
	for _, g := range groups {
		s.unit[g.ID] = widthUnit(g, 8)
		full[g.ID] = g.Channels
	}
	s.target = 0.5 * s.cost(full)
	// The widest uniform start within the budget.
	for f := 0.8; f > 0.2; f -= 0.005 {
		for _, g := range groups {
			w[g.ID] = Width(g, f*float64(g.Channels), 8)
		}
		if s.cost(w) <= s.target {
			break
		}
	}
	// As speedLimit bounds it: within speedSlack of the budget, or the start's cost if less.
	s.floor = min(s.cost(w), s.target-speedSlack*s.cost(full))
	return s, speed, full, w
}

// TestSpeedDescentEndsWhereNoExchangeHelps: from a uniform start over the budget's speed, the
// descent keeps the cost within its bounds, lowers the predicted time and the limit with it, and
// stops only where no unit taken from one group (alone, or given to another) is predicted
// faster within those bounds.
func TestSpeedDescentEndsWhereNoExchangeHelps(t *testing.T) {
	s, speed, full, w := descentSetUp(t)
	groups := s.groups
	whole := speed(full)
	before := speed(w) / whole
	s.speedTarget = speed(w)
	res := &SearchResult{SpeedLimit: before}
	s.speedDescent(w, full, res)
	after := speed(w) / whole
	t.Logf("predicted %.3f → %.3f, MACs %.3f", before, after, s.cost(w)/s.cost(full))
	if c := s.cost(w); c < s.floor || c > s.target {
		t.Fatalf("cost %.4f after the descent, want within [%.4f, %.4f]", c/s.cost(full), s.floor/s.cost(full), s.target/s.cost(full))
	}
	if after > before-0.02 {
		t.Errorf("predicted %.3f → %.3f: want a clear gain from a uniform start", before, after)
	}
	if math.Abs(res.SpeedLimit-after) > 1e-9 || math.Abs(s.speedTarget/whole-after) > 1e-9 {
		t.Errorf("limit %.4f (target %.4f), want the descent's result %.4f", res.SpeedLimit, s.speedTarget/whole, after)
	}
	if d := res.Descent; d == nil || !d.Kept || math.Abs(d.From-before) > 1e-9 || math.Abs(d.To-after) > 1e-9 {
		t.Errorf("descent recorded as %+v, want from %.4f to %.4f, kept", d, before, after)
	}
	if after <= 0.5 {
		return // as fast as asked: the descent stops there
	}
	for _, g := range groups {
		v := w[g.ID]
		if v <= s.unit[g.ID] {
			continue
		}
		w[g.ID] = s.clampWidth(g, v-s.startStep(g))
		for _, h := range append([]*rewrite.Group{nil}, groups...) {
			var u int
			if h != nil {
				if h == g || w[h.ID] >= h.Channels {
					continue
				}
				u = w[h.ID]
				w[h.ID] = min(h.Channels, u+s.startStep(h))
			}
			if c := s.cost(w); c >= s.floor && c <= s.target && speed(w)/whole < after-1e-4 {
				to := "none"
				if h != nil {
					to = fmt.Sprint(h.ID)
				}
				t.Errorf("a unit from group %d to %s is predicted at %.4f, under the descent's %.4f", g.ID, to, speed(w)/whole, after)
			}
			if h != nil {
				w[h.ID] = u
			}
		}
		w[g.ID] = v
	}
}

// TestSpeedDescentKeptOnlyWhereMeasuredFaster: with SearchOptions.SpeedCheck, a descent the
// runtime does not measure at least descentGain faster is undone (the start and the limit are as
// before it, and the report says so), and one it does is kept.
func TestSpeedDescentKeptOnlyWhereMeasuredFaster(t *testing.T) {
	for _, measured := range []float64{1.0, 1 - descentGain - 0.01} {
		s, speed, full, w := descentSetUp(t)
		var checked [2]Widths
		s.opt.SpeedCheck = func(before, after Widths) (float64, error) {
			checked = [2]Widths{before.clone(), after.clone()}
			return measured, nil
		}
		start := w.clone()
		s.speedTarget = speed(w)
		res := &SearchResult{SpeedLimit: speed(w) / speed(full)}
		s.speedDescent(w, full, res)
		d := res.Descent
		if d == nil || d.Measured != measured {
			t.Fatalf("measured %.2f: descent recorded as %+v", measured, d)
		}
		if checked[0].key() != start.key() || checked[1].key() == start.key() {
			t.Errorf("measured %.2f: the check timed %v against %v, want the start against the descent's", measured, checked[0], checked[1])
		}
		if keep := measured <= 1-descentGain; d.Kept != keep || (w.key() == start.key()) == keep {
			t.Errorf("measured %.2f: kept %v (start unchanged: %v), want kept %v", measured, d.Kept, w.key() == start.key(), keep)
		}
		if !d.Kept && (res.SpeedLimit != d.From || s.speedTarget != speed(start)) {
			t.Errorf("measured %.2f: undone, but the limit is %.4f (target %.4f), want %.4f", measured, res.SpeedLimit, s.speedTarget/speed(full), d.From)
		}
	}
}

// TestSpeedDescentUndoneWhenNotTimed: a check that fails undoes the descent and says why.
func TestSpeedDescentUndoneWhenNotTimed(t *testing.T) {
	s, speed, full, w := descentSetUp(t)
	s.opt.SpeedCheck = func(before, after Widths) (float64, error) { return 0, fmt.Errorf("no runtime") }
	start := w.clone()
	s.speedTarget = speed(w)
	res := &SearchResult{SpeedLimit: speed(w) / speed(full)}
	s.speedDescent(w, full, res)
	if d := res.Descent; d == nil || d.Kept || d.Error != "no runtime" || w.key() != start.key() {
		t.Errorf("descent %+v (start unchanged: %v), want it undone with the check's error", d, w.key() == start.key())
	}
}

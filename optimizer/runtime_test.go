package optimizer

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// blockRuntime is a fake runtime whose time is a model's MACs, times offGrid when any Conv's
// output channels are not a multiple of 8 (as ONNX Runtime pays for leaving its NCHWc blocks):
// deterministic, so the choice among grids and the proof can be checked exactly.
type blockRuntime struct {
	grids   []int
	offGrid float64
}

func (blockRuntime) Name() string    { return "blocks" }
func (blockRuntime) Version() string { return "test" }
func (blockRuntime) Threads() int    { return 1 }
func (r blockRuntime) Grids() []int  { return r.grids }

type fixedTimer time.Duration

func (t fixedTimer) Once() (time.Duration, error) { return time.Duration(t), nil }
func (fixedTimer) Close()                         {}

func (r blockRuntime) Prepare(m *onnx.Model, inputs map[string]onnx.Shape) (Timer, error) {
	c, err := onnx.CostAt(m, inputs)
	if err != nil {
		return nil, err
	}
	d := float64(c.MACs)
	for _, n := range m.Graph.Nodes {
		if n.OpType != "Conv" {
			continue
		}
		if w := m.Graph.Inits[n.Inputs[1]]; w != nil && w.Dims[0]%8 != 0 {
			d *= r.offGrid
			break
		}
	}
	return fixedTimer(d), nil
}

func (r blockRuntime) Predictor(a *rewrite.Analysis, inputs map[string]onnx.Shape, _ func(int, int)) (func(Widths) float64, error) {
	macs, err := onnx.NodeMACsAt(a.Model, inputs)
	if err != nil {
		return nil, err
	}
	wc := a.WidthCost(macs)
	return func(w Widths) float64 { c, _ := wc.Eval(w); return c }, nil
}

// TestShrinkChoosesTheFastestGrid: with RoundTo left to the runtime, every grid is searched under
// the MACs budget and the one that runs fastest is kept; the proof times original and slim and
// flags a slim model that is not faster.
func TestShrinkChoosesTheFastestGrid(t *testing.T) {
	m, shapes, _ := bundled(t, "resnet8")
	for _, tc := range []struct {
		name     string
		rt       blockRuntime
		roundTo  int
		wantGrid int // 0: no choice made; -1: any (the grids' results run alike)
		slower   bool
	}{
		{"off-grid widths cost triple: multiples of 8 kept", blockRuntime{[]int{1, 8}, 3}, 0, 8, false},
		{"no cost off the grid", blockRuntime{[]int{1, 8}, 1}, 0, -1, false},
		{"the user's grid is searched alone", blockRuntime{[]int{1, 8}, 3}, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := DefaultOptions()
			opt.Budget = Budget{Kind: MACs, Ratio: 0.5}
			opt.Repair, opt.Iterations, opt.Runtime, opt.RoundTo, opt.LatencyBatch = RepairNone, 200, tc.rt, tc.roundTo, 4
			opt.Inputs = shapes
			res, err := Shrink(context.Background(), m, opt)
			if err != nil {
				t.Fatal(err)
			}
			rr := res.Report.Runtime
			if rr == nil || rr.Runtime != "blocks" || len(rr.Batches) != 2 || rr.Batches[1].Batch != 4 {
				t.Fatalf("runtime report %+v, want the fake runtime's timing at batch 1 and 4", rr)
			}
			for _, g := range rr.Grids {
				if g.RoundTo == rr.RoundTo && (g.MS <= 0 || g.QuarterMS <= 0) {
					t.Errorf("kept grid %d has no time (trials %+v)", g.RoundTo, rr.Grids)
				}
				for _, h := range rr.Grids {
					// The fake's times are exact: the original's is the proof's at the batch the
					// grids were timed at (the latency batch).
					enough := (1 + gridTolerance) * 0.5 * rr.Batches[len(rr.Batches)-1].BeforeMS
					short := float64(h.MACs) < (0.5-gridCostSlack)*float64(res.Report.Before.MACs)
					if g.RoundTo == rr.RoundTo && h.Error == "" && !short && h.MS < g.MS && g.MS > enough {
						t.Errorf("kept multiples of %d (%.3f ms) although multiples of %d ran in %.3f ms", g.RoundTo, g.MS, h.RoundTo, h.MS)
					}
				}
			}
			if tc.wantGrid >= 0 && rr.RoundTo != tc.wantGrid {
				t.Errorf("kept multiples of %d (trials %+v), want %d", rr.RoundTo, rr.Grids, tc.wantGrid)
			}
			if rr.Slower != tc.slower {
				t.Errorf("slower = %v, want %v (%+v)", rr.Slower, tc.slower, rr.Batches)
			}
			if r := float64(res.Report.After.MACs) / float64(res.Report.Before.MACs); r > 0.5 || r < 0.4 {
				t.Errorf("MACs ratio %.3f: want at most the budget 0.5 and no much deeper cut", r)
			}
		})
	}
}

// TestAnnealCostHook: a Cost function replaces the MACs predictor, and the result meets the
// budget in that cost.
func TestAnnealCostHook(t *testing.T) {
	_, shapes, a := bundled(t, "resnet8")
	// A cost that only the widest groups pay for: the search must cut them, not the others.
	cost := func(w Widths) float64 {
		c := 0.0
		for _, g := range a.Prunable() {
			if g.Channels >= 64 {
				c += float64(w[g.ID])
			}
		}
		return c + 1
	}
	full := Widths{}
	for _, g := range a.Prunable() {
		full[g.ID] = g.Channels
	}
	res, err := Anneal(a, SearchOptions{Budget: Budget{Kind: Latency, Ratio: 0.5}, Inputs: shapes, Seed: 1, Iterations: 200, Cost: cost})
	if err != nil {
		t.Fatal(err)
	}
	if got, limit := cost(res.Widths), 0.5*cost(full); got > limit {
		t.Errorf("cost %.0f over the budget %.0f", got, limit)
	}
	if res.Base != cost(full) {
		t.Errorf("base %.0f, want the hook's cost at full width %.0f", res.Base, cost(full))
	}
}

// TestTimeAlternately times two models in the engine in turn: each gets the same number of runs,
// and the one with twice the work is the slower.
func TestTimeAlternately(t *testing.T) {
	m, shapes, _ := bundled(t, "resnet8")
	ts, err := TimeAlternately(EngineRuntime{NumThreads: 1}, []*onnx.Model{m, m}, AtBatch(m, shapes, 2), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Runs != ts[1].Runs || ts[0].Runs < 5 || ts[0].Median <= 0 {
		t.Fatalf("timings %+v: want two with the same number (≥ 5) of runs", ts)
	}
	one, err := TimeAlternately(EngineRuntime{NumThreads: 1}, []*onnx.Model{m}, AtBatch(m, shapes, 16), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if one[0].Median < ts[0].Median {
		t.Errorf("batch 16 took %v, batch 2 %v", one[0].Median, ts[0].Median)
	}
}

// TestChooseGrid: the best-judged result among those fast enough (as fast as the budget asked, or,
// when it asked for no speed, about as fast as the fastest), within a latency limit when there is
// one; the fastest when none meets it or the speed asked.
func TestChooseGrid(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name  string
		rs    []gridResult
		limit float64
		fast  float64 // fast enough
		want  int
	}{
		{"much faster wins over better judged", []gridResult{{MS: 10, Fitness: 2}, {MS: 6, Fitness: 1}}, inf, 0, 1},
		{"no speed asked, within tolerance: better judged", []gridResult{{MS: 6.2, Fitness: 2}, {MS: 6, Fitness: 1}}, inf, 0, 0},
		{"speed asked and not reached: fastest, no tolerance", []gridResult{{MS: 6.2, Fitness: 2}, {MS: 6, Fitness: 1}}, inf, 5, 1},
		{"fast enough for the budget: better judged", []gridResult{{MS: 9, Fitness: 2}, {MS: 6, Fitness: 1}}, inf, 9.2, 0},
		{"tie in judgement: more MACs kept", []gridResult{{MS: 6, MACs: 5, Fitness: 1}, {MS: 6.1, MACs: 9, Fitness: 1}}, inf, 0, 1},
		{"over the limit is out", []gridResult{{MS: 5.1, Fitness: 9}, {MS: 5.0, Fitness: 1}}, 5.05, 5.05, 1},
		{"none meets the limit: fastest", []gridResult{{MS: 7, Fitness: 9}, {MS: 6, Fitness: 1}, {MS: 6.2, Fitness: 3}}, 5, 5, 1},
		{"no judgement: more MACs", []gridResult{{MS: 6, MACs: 1, Fitness: math.Inf(-1)}, {MS: 6, MACs: 2, Fitness: math.Inf(-1)}}, inf, 0, 1},
	} {
		if got := chooseGrid(tc.rs, tc.limit, tc.fast); got != tc.want {
			t.Errorf("%s: chose %d, want %d", tc.name, got, tc.want)
		}
	}
}

// skewedRuntime times a model as its MACs (blockRuntime with no cost off the grid) but predicts
// from a table that adds skew times the full model's cost to every candidate, as per-layer tables
// cut from a graph do with the fixed costs each layer carries (skew > 0: predicted ratios above
// the measured ones; skew < 0: below).
type skewedRuntime struct {
	blockRuntime
	skew float64
}

func (r skewedRuntime) Predictor(a *rewrite.Analysis, inputs map[string]onnx.Shape, p func(int, int)) (func(Widths) float64, error) {
	f, err := r.blockRuntime.Predictor(a, inputs, p)
	if err != nil {
		return nil, err
	}
	full := Widths{}
	for _, g := range a.Prunable() {
		full[g.ID] = g.Channels
	}
	extra := r.skew * f(full)
	return func(w Widths) float64 { return f(w) + extra }, nil
}

// TestAnnealLatencyCorrectsThePrediction: whether the table predicts exactly, too slow or too
// fast, the kept result meets the latency budget as measured without cutting far under it (within
// latencyUnder of it), in at most latencyAttempts searches.
func TestAnnealLatencyCorrectsThePrediction(t *testing.T) {
	_, shapes, a := bundled(t, "resnet8")
	const goal = 0.5
	for _, tc := range []struct {
		name     string
		skew     float64
		attempts int // the most searches it should take
	}{
		{"exact table", 0, 1},
		{"table predicts too slow (a first search cuts far too deep)", 0.3, 3},
		{"table predicts too fast (a first search misses the budget)", -0.2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := skewedRuntime{blockRuntime{[]int{1}, 1}, tc.skew}
			res, err := AnnealLatency(a, SearchOptions{Budget: Budget{Kind: Latency, Ratio: goal}, Inputs: shapes, Seed: 1, Iterations: 300}, rt, shapes)
			if err != nil {
				t.Fatal(err)
			}
			r := res.Ratio
			if r > goal || r < latencyUnder*goal-0.01 {
				t.Errorf("measured ratio %.3f after %d searches: want within [%.3f, %.3f]", r, res.Attempts, latencyUnder*goal, goal)
			}
			if res.Attempts > tc.attempts {
				t.Errorf("%d searches, want at most %d", res.Attempts, tc.attempts)
			}
		})
	}
}

// TestPairedRatio: the median of the rounds' ratios (the two middle ones averaged for an even
// count), which a drift between rounds does not move where the ratio of the medians moves; the
// ratio of the medians when there are no rounds to pair.
func TestPairedRatio(t *testing.T) {
	ms := func(xs ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x*float64(time.Millisecond)))
		}
		return out
	}
	// The machine slows down after the first round; the slim model, timed after the original in
	// each round, gets more of the slow rounds' runs: its median is from a slow round, the
	// original's from a fast one.
	base := Timed{Median: 10 * time.Millisecond, Rounds: ms(10, 10, 20)}
	slim := Timed{Median: 10 * time.Millisecond, Rounds: ms(5, 10, 10)}
	if got := PairedRatio(slim, base); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("paired ratio %.4f, want 0.5 (round ratios 0.5, 1, 0.5)", got)
	}
	even := Timed{Rounds: ms(5, 6, 8, 9)}
	if got := PairedRatio(even, Timed{Median: time.Millisecond, Rounds: ms(10, 10, 10, 10)}); math.Abs(got-0.7) > 1e-12 {
		t.Errorf("paired ratio of an even count %.4f, want 0.7, the middle two averaged", got)
	}
	if got := PairedRatio(Timed{Median: 3 * time.Millisecond}, Timed{Median: 4 * time.Millisecond}); math.Abs(got-0.75) > 1e-12 {
		t.Errorf("without rounds %.4f, want the ratio of medians 0.75", got)
	}
}

// TestTimeAlternatelyKeepsRounds: every model gets one median per round timed, the same count
// for all, so they can be paired.
func TestTimeAlternatelyKeepsRounds(t *testing.T) {
	m, shapes, _ := bundled(t, "resnet8")
	ts, err := TimeAlternately(blockRuntime{[]int{1}, 1}, []*onnx.Model{m, m}, shapes, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts[0].Rounds) < 10 || len(ts[0].Rounds) != len(ts[1].Rounds) {
		t.Fatalf("rounds %d and %d, want the same count, at least 10", len(ts[0].Rounds), len(ts[1].Rounds))
	}
	if ts[0].Runs != blockRuns*len(ts[0].Rounds) {
		t.Errorf("%d runs in %d rounds, want %d a round", ts[0].Runs, len(ts[0].Rounds), blockRuns)
	}
	for _, d := range ts[1].Rounds {
		if d != ts[1].Median {
			t.Fatalf("a round's median %v, want the fixed timer's %v", d, ts[1].Median)
		}
	}
	if got := PairedRatio(ts[1], ts[0]); got != 1 {
		t.Errorf("a model paired with itself: %.4f, want 1", got)
	}
}

// orderRuntime times every model alike and logs which model each run was of.
type orderRuntime struct {
	blockRuntime
	log *[]int
}

type orderTimer struct {
	id  int
	log *[]int
}

func (t orderTimer) Once() (time.Duration, error) {
	*t.log = append(*t.log, t.id)
	return time.Millisecond, nil
}
func (orderTimer) Close() {}

func (r orderRuntime) Prepare(m *onnx.Model, _ map[string]onnx.Shape) (Timer, error) {
	return orderTimer{id: len(m.Graph.Nodes), log: r.log}, nil
}

// TestTimeAlternatelyRotates: every round runs every model once, and the rounds start at each
// model in turn, so none always follows the same one.
func TestTimeAlternatelyRotates(t *testing.T) {
	m, shapes, _ := bundled(t, "resnet8")
	var models []*onnx.Model
	for k := 1; k <= 3; k++ { // told apart by their node counts
		c := m.Clone()
		c.Graph.Nodes = c.Graph.Nodes[:k]
		models = append(models, c)
	}
	var log []int
	ts, err := TimeAlternately(orderRuntime{log: &log}, models, shapes, 0)
	if err != nil {
		t.Fatal(err)
	}
	per := 1 + blockRuns // the untimed run after the pause, then the timed ones
	rounds := len(log) / (per * len(models))
	if rounds != len(ts[0].Rounds)+1 || len(log) != rounds*per*len(models) {
		t.Fatalf("%d runs logged for %d kept rounds and a warm-up", len(log), len(ts[0].Rounds))
	}
	firsts := map[int]int{}
	for r := 0; r < rounds; r++ {
		seen := map[int]bool{}
		for k := 0; k < len(models); k++ {
			block := log[(r*len(models)+k)*per : (r*len(models)+k+1)*per]
			for _, id := range block {
				if id != block[0] {
					t.Fatalf("round %d mixes models within a block: %v", r, block)
				}
			}
			seen[block[0]] = true
			if k == 0 {
				firsts[block[0]]++
			}
		}
		if len(seen) != len(models) {
			t.Fatalf("round %d ran models %v, want all %d", r, seen, len(models))
		}
	}
	for id := 1; id <= 3; id++ {
		if firsts[id] < rounds/len(models) {
			t.Errorf("model %d started %d of %d rounds, want about a third (%v)", id, firsts[id], rounds, firsts)
		}
	}
}

package optimizer

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

func zeroInputs(p *engine.Program, inputs map[string]onnx.Shape) []*engine.Tensor {
	var ins []*engine.Tensor
	for _, name := range p.Inputs() {
		s := inputs[name]
		dims := make([]int, len(s))
		for i, d := range s {
			dims[i] = int(d.Size)
		}
		ins = append(ins, engine.Zeros(dims...))
	}
	return ins
}

// LatencyTable measures, once, each node's time at the given input shapes (batch 1) in chanopt's
// engine with every node run on its own: the per-layer table a latency budget is predicted from.
func LatencyTable(m *onnx.Model, inputs map[string]onnx.Shape, threads int) (map[*onnx.Node]int64, error) {
	p, err := engine.Compile(m, engine.Options{Threads: threads, NoFusion: true})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	times, err := p.NodeTimes(zeroInputs(p, inputs), 30)
	if err != nil {
		return nil, err
	}
	out := map[*onnx.Node]int64{}
	for _, n := range m.Graph.Nodes {
		if t := times[n.Label()]; t > 0 {
			out[n] = int64(t)
		}
	}
	return out, nil
}

// MeasureLatency is the median time of one inference in the engine (fused, as deployed), in ms: of
// as many runs as fit in budget, at least 15 (up to 500) while 15 take no longer than the budget,
// and at least 3 however long one run is. The runs before the timed ones (planning the run, faulting
// in the buffers) stop after three or once they have taken a quarter of the budget. A large model
// (ResNet-50: 0.2 s a run) is thus measured in about the budget, not in 18 runs.
func MeasureLatency(m *onnx.Model, inputs map[string]onnx.Shape, threads int, budget time.Duration) (float64, error) {
	p, err := engine.Compile(m, engine.Options{Threads: threads})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	ins := zeroInputs(p, inputs)
	var one time.Duration // the last warm-up run: what a timed run will take
	for i, start := 0, time.Now(); i < 3 && (i == 0 || time.Since(start) < budget/4); i++ {
		t0 := time.Now()
		if _, err := p.RunSlice(ins...); err != nil {
			return 0, err
		}
		one = time.Since(t0)
	}
	minRuns := 15
	if one > 0 {
		minRuns = max(3, min(15, int(budget/one)))
	}
	var ts []time.Duration
	deadline := time.Now().Add(budget)
	for len(ts) < minRuns || (time.Now().Before(deadline) && len(ts) < 500) {
		t0 := time.Now()
		if _, err := p.RunSlice(ins...); err != nil {
			return 0, err
		}
		ts = append(ts, time.Since(t0))
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return float64(ts[len(ts)/2].Nanoseconds()) / 1e6, nil
}

// LatencyResult is a latency-budgeted search with the measurements that confirm it.
type LatencyResult struct {
	*SearchResult
	// BeforeMS and AfterMS are the original's and the result's median times, timed alternately in
	// the runtime at the timed input shapes; Ratio is the result's share of the original's, round
	// by round (PairedRatio), which the budget is checked on.
	BeforeMS, AfterMS, Ratio float64
	Attempts                 int
}

// latencyAttempts bounds how often a latency search runs again with a corrected target.
const latencyAttempts = 3

// latencyUnder is how far under a latency budget a measured result may land and be kept at once:
// the per-layer tables overestimate what a cut saves or costs in either direction (small layers do
// not speed up in proportion; each cut-out layer carries fixed costs the whole model pays once), and
// a result far under the budget cut more channels than it needed to. latencyAim is where a
// corrected target aims, inside that band.
const (
	latencyUnder = 0.9
	latencyAim   = 0.95
)

// AnnealLatency searches widths under a latency budget measured in rt at the timed input shapes
// (opt.Inputs stay the shapes MACs and params are counted at): the runtime's per-layer predictor
// is the annealer's cost, and the result is timed end to end alternately with the original. A
// prediction is an estimate, so when the measured ratio is over the budget, or under latencyUnder
// of it, the search runs again with its target scaled by how far the measurement missed (kept
// between the targets known to meet the budget and to miss it), up to latencyAttempts in all. Of
// the results that meet the budget the one that cut least is kept; when none does, the fastest.
func AnnealLatency(a *rewrite.Analysis, opt SearchOptions, rt Runtime, timed map[string]onnx.Shape) (*LatencyResult, error) {
	if opt.Stage != nil {
		opt.Stage("latency table", fmt.Sprintf("each layer's time in %s at a ladder of widths (cached)", rt.Name()))
	}
	var progress func(done, total int)
	if opt.Progress != nil {
		progress = func(d, t int) { opt.Progress(d, t, 0) }
	}
	predict, err := rt.Predictor(a, timed, progress)
	if err != nil {
		return nil, fmt.Errorf("latency table in %s: %w", rt.Name(), err)
	}
	opt.Cost = predict
	goal := opt.Budget.Ratio
	var best *LatencyResult
	meets := func(r *LatencyResult) bool { return r.Ratio <= goal }
	ratio := func(r *LatencyResult) float64 { return r.Ratio }
	// The largest target known to meet the budget and the smallest known to miss it, with their
	// measured ratios (metRatio < 0, missedRatio < 0: none yet).
	met, metRatio, missed, missedRatio := 0.0, -1.0, 1.0, -1.0
	// Under a time limit the first search gets half of it and each later one an even share of
	// what is left, so the corrections stay within the search's time.
	limit, began := opt.TimeLimit, time.Now()
	for attempt := 1; attempt <= latencyAttempts; attempt++ {
		if limit > 0 {
			opt.TimeLimit = limit / 2
			if attempt > 1 {
				left := limit - time.Since(began)
				if left <= 0 {
					break
				}
				opt.TimeLimit = left / time.Duration(latencyAttempts-attempt+1)
			}
		}
		sr, err := Anneal(a, opt)
		if err != nil {
			if best != nil && ctxErr(opt) == nil {
				break // the corrected target is out of reach on this grid: keep the best so far
			}
			return nil, err
		}
		ts, err := TimeAlternately(rt, []*onnx.Model{a.Model, sr.Model}, timed, time.Second)
		if err != nil {
			return nil, err
		}
		r := &LatencyResult{SearchResult: sr, BeforeMS: durationMS(ts[0].Median), AfterMS: durationMS(ts[1].Median),
			Ratio: PairedRatio(ts[1], ts[0])}
		switch {
		case best == nil,
			meets(r) && (!meets(best) || ratio(r) > ratio(best)),
			!meets(r) && !meets(best) && ratio(r) < ratio(best):
			best = r
		}
		best.Attempts = attempt
		target := opt.Budget.Ratio
		if meets(r) {
			if target > met {
				met, metRatio = target, ratio(r)
			}
			if ratio(r) >= latencyUnder*goal {
				break
			}
		} else if target < missed {
			missed, missedRatio = target, ratio(r)
		}
		// The measured ratio grows about linearly with the target (the predictor's error is
		// mostly a fixed cost): a secant step between a target that met the budget and one that
		// missed it, else one in proportion to the miss.
		aim := latencyAim * goal
		next := target * aim / max(ratio(r), 1e-9)
		if metRatio >= 0 && missedRatio > metRatio {
			next = met + (aim-metRatio)*(missed-met)/(missedRatio-metRatio)
		}
		if next <= met || next >= missed {
			next = (met + missed) / 2
		}
		if next <= 0.02 || math.Abs(next-target) < 0.005 {
			break
		}
		opt.Budget.Ratio = next
	}
	return best, nil
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ctxErr(opt SearchOptions) error {
	if opt.Context != nil {
		return opt.Context.Err()
	}
	return nil
}

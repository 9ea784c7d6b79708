package optimizer

import (
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
	BeforeMS, AfterMS float64
	Attempts          int
}

// AnnealLatency searches widths under a latency budget: costs are predicted from the per-layer
// table, the result is measured, and when the measurement exceeds the budget (the table is an
// estimate: small layers do not speed up in proportion) the search runs again with a target
// tightened by the overshoot, up to three times.
func AnnealLatency(a *rewrite.Analysis, opt SearchOptions, threads int) (*LatencyResult, error) {
	table, err := LatencyTable(a.Model, opt.Inputs, threads)
	if err != nil {
		return nil, err
	}
	before, err := MeasureLatency(a.Model, opt.Inputs, threads, time.Second)
	if err != nil {
		return nil, err
	}
	opt.CostBase = table
	goal := opt.Budget.Ratio
	var best *LatencyResult
	for attempt := 1; attempt <= 3; attempt++ {
		sr, err := Anneal(a, opt)
		if err != nil {
			return nil, err
		}
		after, err := MeasureLatency(sr.Model, opt.Inputs, threads, time.Second)
		if err != nil {
			return nil, err
		}
		r := &LatencyResult{SearchResult: sr, BeforeMS: before, AfterMS: after, Attempts: attempt}
		if best == nil || after < best.AfterMS {
			best = r
		}
		if after <= goal*before {
			return r, nil
		}
		opt.Budget.Ratio *= goal * before / after
		if opt.Budget.Ratio <= 0.02 {
			break
		}
	}
	return best, nil
}

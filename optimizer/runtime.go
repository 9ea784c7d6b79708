package optimizer

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/latency"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
	"github.com/chanopt/chanopt/rewrite"
)

// Runtime is where latency is measured: where the user deploys (ONNX Runtime, ORTRuntime) or,
// when ONNX Runtime is not on the machine, chanopt's own engine (EngineRuntime). A latency budget
// is predicted and measured in it, and Shrink's proof (original and slim timed alternately) is
// taken in it.
type Runtime interface {
	// Name is "ort" or "engine"; Version is the runtime's version ("" when it has none).
	Name() string
	Version() string
	// Threads is the intra-op thread count it runs with (never 0).
	Threads() int
	// Prepare readies m to be timed on random inputs of the given static shapes.
	Prepare(m *onnx.Model, inputs map[string]onnx.Shape) (Timer, error)
	// Predictor predicts, from per-layer measurements, the latency (in any unit: only ratios are
	// used) of the analysed model at the given widths and input shapes.
	Predictor(a *rewrite.Analysis, inputs map[string]onnx.Shape, progress func(done, total int)) (func(Widths) float64, error)
	// Grids are the width multiples worth searching when the user gave none: the runtime's fast
	// widths are not the same for every model, so each is searched and the fastest kept.
	Grids() []int
}

// Timer runs a prepared model once at a time.
type Timer interface {
	Once() (time.Duration, error)
	Close()
}

// EngineRuntime measures in chanopt's engine. Its zero value uses every core.
type EngineRuntime struct{ NumThreads int }

func (EngineRuntime) Name() string    { return "engine" }
func (EngineRuntime) Version() string { return "" }
func (e EngineRuntime) Threads() int {
	if e.NumThreads > 0 {
		return e.NumThreads
	}
	return runtime.NumCPU()
}

// Grids is 1 only: the engine has no blocked layouts, so its time follows MACs.
func (EngineRuntime) Grids() []int { return []int{1} }

type engineTimer struct {
	p   *engine.Program
	ins []*engine.Tensor
}

func (t *engineTimer) Once() (time.Duration, error) {
	start := time.Now()
	_, err := t.p.RunSlice(t.ins...)
	return time.Since(start), err
}

func (t *engineTimer) Close() { t.p.Close() }

func (e EngineRuntime) Prepare(m *onnx.Model, inputs map[string]onnx.Shape) (Timer, error) {
	p, err := engine.Compile(m, engine.Options{Threads: e.NumThreads})
	if err != nil {
		return nil, err
	}
	return &engineTimer{p: p, ins: zeroInputs(p, inputs)}, nil
}

// Predictor sums the engine's per-node times (LatencyTable) over the widths, as WidthCost scales
// each node's cost with the channels it keeps.
func (e EngineRuntime) Predictor(a *rewrite.Analysis, inputs map[string]onnx.Shape, _ func(int, int)) (func(Widths) float64, error) {
	table, err := LatencyTable(a.Model, inputs, e.NumThreads)
	if err != nil {
		return nil, err
	}
	wc := a.WidthCost(table)
	return func(w Widths) float64 { ns, _ := wc.Eval(w); return ns }, nil
}

// ORTRuntime measures in ONNX Runtime's CPU execution provider, loaded at run time (package ort).
type ORTRuntime struct {
	NumThreads int
	// CacheDir and NoCache say where latency tables are cached (see latency.Options).
	CacheDir string
	NoCache  bool
}

// NewORTRuntime loads ONNX Runtime from lib ("" for $CHANOPT_ORT_LIB or the usual places); the
// error says why it cannot be used.
// DefaultRuntime is the runtime chanopt measures in unless told otherwise: ONNX Runtime when its
// library is found (lib, $CHANOPT_ORT_LIB, the usual paths), else the engine, with why ONNX Runtime
// was not used. The CLI and the bench both start from it.
func DefaultRuntime(lib string, threads int) (rt Runtime, whyNotORT string) {
	r, err := NewORTRuntime(lib, threads)
	if err != nil {
		return EngineRuntime{NumThreads: threads}, err.Error()
	}
	return r, ""
}

func NewORTRuntime(lib string, threads int) (*ORTRuntime, error) {
	if err := ort.Load(lib); err != nil {
		return nil, err
	}
	return &ORTRuntime{NumThreads: threads}, nil
}

func (*ORTRuntime) Name() string { return "ort" }
func (*ORTRuntime) Version() string {
	v, _ := ort.Version()
	return v
}
func (r *ORTRuntime) Threads() int {
	if r.NumThreads > 0 {
		return r.NumThreads
	}
	return runtime.NumCPU()
}

// Grids are ONNX Runtime's blocked-layout widths: off-grid widths pay for padding and reorders
// (NCHWc blocks of 8 on AVX2, 16 on AVX-512), yet a coarse grid wastes budget on small layers.
func (*ORTRuntime) Grids() []int { return []int{1, 8, 16} }

type ortTimer struct {
	s *ort.Session
	r *ort.Runner
}

func (t *ortTimer) Once() (time.Duration, error) { return t.r.Once() }
func (t *ortTimer) Close()                       { t.r.Close(); t.s.Close() }

func (r *ORTRuntime) Prepare(m *onnx.Model, inputs map[string]onnx.Shape) (Timer, error) {
	mp, err := m.Export()
	if err != nil {
		return nil, err
	}
	b, err := onnx.Encode(mp)
	if err != nil {
		return nil, err
	}
	s, err := ort.OpenBytes(cmpName(m), b, r.Threads())
	if err != nil {
		return nil, err
	}
	shapes := make([][]int64, len(s.Inputs))
	for i, name := range s.Inputs {
		shape, ok := inputs[name]
		if !ok || !shape.Static() {
			s.Close()
			return nil, fmt.Errorf("ONNX Runtime: input %s has no static shape to time it at", name)
		}
		shapes[i] = shape.Sizes()
	}
	ins := s.RandomTensors(shapes, 1)
	run, err := s.Runner(ins)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &ortTimer{s: s, r: run}, nil
}

func cmpName(m *onnx.Model) string {
	if m.Path != "" {
		return m.Path
	}
	return "model"
}

// Predictor is the model's per-layer latency table in ONNX Runtime (latency.Build, cached).
func (r *ORTRuntime) Predictor(a *rewrite.Analysis, inputs map[string]onnx.Shape, progress func(int, int)) (func(Widths) float64, error) {
	batch := 1
	for _, s := range inputs {
		if len(s) > 0 && s[0].Known() {
			batch = int(s[0].Size)
		}
		break
	}
	t, err := latency.Build(a, latency.Options{Batch: batch, Threads: r.Threads(), Inputs: inputs,
		CacheDir: r.CacheDir, NoCache: r.NoCache, Progress: progress})
	if err != nil {
		return nil, err
	}
	return func(w Widths) float64 { return float64(t.Predict(w)) }, nil
}

// Timed is one model's alternated measurement.
type Timed = ort.Timing

// blockRuns is how many timed runs each model gets per round, after a pause (ort.SwitchPause) and
// one untimed run: five, so the pause is not most of a round's time on a small net.
const blockRuns = 5

// TimeAlternately times the models in rounds, each round running every model in turn (a pause
// while the last model's threads stop spinning, one untimed run, then blockRuns timed runs), so a
// change in the machine's load falls on all of them alike while no model is timed among another's
// spinning threads. Each round starts one model further on, so every model follows every other
// equally often: where a model runs in the rotation moves its time (mobilenet_v3_small's results
// on multiples of 8 and 16, alternated with the original in onnxruntime-node at two threads, ran
// 0.709 and 0.750 of it as ratios of medians in one order, 0.686–0.717 and 0.630–0.661 in the
// other). A warm-up round, then at least 10 rounds (20 when they are quick) and more while budget
// lasts, up to 500. The
// rounds are what average the machine's drift out, not the runs within one: resnet18 and eight
// slim models alternated in onnxruntime-node at two threads for 4 s (2–3 rounds) gave its --macs
// result 0.52, 0.60 and 0.63 of the original in three runs, and for 15 s 0.539 and 0.545.
func TimeAlternately(rt Runtime, models []*onnx.Model, inputs map[string]onnx.Shape, budget time.Duration) ([]Timed, error) {
	timers := make([]Timer, 0, len(models))
	defer func() {
		for _, t := range timers {
			t.Close()
		}
	}()
	for _, m := range models {
		t, err := rt.Prepare(m, inputs)
		if err != nil {
			return nil, fmt.Errorf("timing in %s: %w", rt.Name(), err)
		}
		timers = append(timers, t)
	}
	samples := make([][]time.Duration, len(models))
	rounds := make([][]time.Duration, len(models))
	started := 0 // rounds begun: the next starts at model started mod len(models)
	round := func(keep bool) (time.Duration, error) {
		var total time.Duration
		start := started
		started++
		for k := range timers {
			i := (start + k) % len(timers)
			t := timers[i]
			first := len(samples[i])
			time.Sleep(ort.SwitchPause)
			if _, err := t.Once(); err != nil {
				return 0, fmt.Errorf("timing in %s: %w", rt.Name(), err)
			}
			for r := 0; r < blockRuns; r++ {
				d, err := t.Once()
				if err != nil {
					return 0, fmt.Errorf("timing in %s: %w", rt.Name(), err)
				}
				total += d
				if keep {
					samples[i] = append(samples[i], d)
				}
			}
			if keep {
				rounds[i] = append(rounds[i], ort.Summarize(samples[i][first:]).Median)
			}
		}
		return total, nil
	}
	one, err := round(false)
	if err != nil {
		return nil, err
	}
	minRounds := 20
	if one > 0 {
		minRounds = max(10, min(20, int(budget/one)))
	}
	deadline := time.Now().Add(budget)
	for r := 0; r < minRounds || (time.Now().Before(deadline) && r < 500); r++ {
		if _, err := round(true); err != nil {
			return nil, err
		}
	}
	out := make([]Timed, len(models))
	for i := range samples {
		out[i] = ort.Summarize(samples[i])
		out[i].Rounds = rounds[i]
	}
	return out, nil
}

// PairedRatio is t's time as a share of base's, both timed by TimeAlternately in the same rounds:
// the median over rounds of each round's ratio, so a drift in the machine's speed from round to
// round, which a ratio of the two medians keeps, cancels. On this project's 2-vCPU VM at two
// threads, regnet_y_400mf's --macs result alternated with eight other models for 15 s measured
// 0.544–0.594 of the original as a ratio of medians in four runs, and 0.562–0.587 paired (scratch
// timings in onnxruntime-node). Without rounds to pair, it is the ratio of the medians.
func PairedRatio(t, base Timed) float64 {
	if len(t.Rounds) == 0 || len(t.Rounds) != len(base.Rounds) {
		if base.Median <= 0 {
			return math.NaN()
		}
		return float64(t.Median) / float64(base.Median)
	}
	rs := make([]float64, 0, len(t.Rounds))
	for r, d := range t.Rounds {
		if b := base.Rounds[r]; b > 0 {
			rs = append(rs, float64(d)/float64(b))
		}
	}
	if len(rs) == 0 {
		return math.NaN()
	}
	slices.Sort(rs)
	if n := len(rs); n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2
	}
	return rs[len(rs)/2]
}

// AtBatch is the input shapes with every symbolic batch dim of m's inputs set to batch.
func AtBatch(m *onnx.Model, inputs map[string]onnx.Shape, batch int) map[string]onnx.Shape {
	out := map[string]onnx.Shape{}
	for name, s := range inputs {
		s = s.Clone()
		if v := m.Graph.Values[name]; len(s) > 0 && v != nil && v.Shape != nil && len(v.Shape) > 0 && !v.Shape[0].Known() {
			s[0] = onnx.D(int64(batch))
		}
		out[name] = s
	}
	return out
}

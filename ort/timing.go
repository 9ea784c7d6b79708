package ort

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// SwitchPause is how long to wait before timing a session after another session has run: an
// idle session's intra-op threads spin for tens of milliseconds after a run, and on a machine with
// as many cores as threads they take the next session's cores. Measured with onnxruntime-node 1.30
// on a 2-vCPU VM, three sessions of mobilenet_v3_small at 2 threads timed in turn (a pause, one
// untimed run, three timed): median 6.7 ms after a 20 ms pause, 2.4 ms after 50 ms or 100 ms,
// 2.1 ms for one session alone. One thread has no pool to spin, and timed steadily either way.
const SwitchPause = 60 * time.Millisecond

// Timing summarises timed runs: the median, and the spread as the interquartile range (robust to
// the odd run another process on the machine slowed down).
type Timing struct {
	Runs   int
	Median time.Duration
	Q1, Q3 time.Duration // 25th and 75th percentiles
	Min    time.Duration
	Max    time.Duration
	// Rounds, when the runs were timed in rounds alternately with other models, is each round's
	// median, in round order, so that two models' times can be compared round by round.
	Rounds []time.Duration
}

// Spread is half the interquartile range: a typical run is within Median ± Spread.
func (t Timing) Spread() time.Duration { return (t.Q3 - t.Q1) / 2 }

// Summarize computes a Timing from samples (any order). It is shared by every runtime chanopt
// measures so their figures mean the same thing.
func Summarize(samples []time.Duration) Timing {
	if len(samples) == 0 {
		return Timing{}
	}
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return Timing{Runs: len(s), Median: quantile(s, 0.5), Q1: quantile(s, 0.25), Q3: quantile(s, 0.75),
		Min: s[0], Max: s[len(s)-1]}
}

// quantile interpolates linearly between the two nearest samples of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	frac := pos - float64(lo)
	return s[lo] + time.Duration(frac*float64(s[lo+1]-s[lo]))
}

// TimeOptions says how long to time: Warmup untimed runs, then at least Runs timed runs, and more
// until Budget has passed (0: exactly Runs).
type TimeOptions struct {
	Warmup int
	Runs   int
	Budget time.Duration
	// MaxRuns bounds the timed runs (0: maxTimedRuns).
	MaxRuns int
}

// limit is the most timed runs opt allows.
func (opt TimeOptions) limit() int {
	if opt.MaxRuns > 0 {
		return max(opt.MaxRuns, opt.Runs)
	}
	return maxTimedRuns
}

// maxTimedRuns bounds a budgeted measurement of a very fast model.
const maxTimedRuns = 100000

// Time runs the session on the inputs and times each run. Inputs are wrapped once and outputs are
// released without copying them out, so the figure is ONNX Runtime's own time.
func (s *Session) Time(inputs []Tensor, opt TimeOptions) (Timing, error) {
	r, err := s.Runner(inputs)
	if err != nil {
		return Timing{}, err
	}
	defer r.Close()
	samples, err := r.timed(opt)
	if err != nil {
		return Timing{}, err
	}
	return Summarize(samples), nil
}

// timed makes opt's runs: Warmup untimed, then at least Runs timed and more until Budget has
// passed (at most opt.limit()), and returns the timed runs' durations.
func (r *Runner) timed(opt TimeOptions) ([]time.Duration, error) {
	for i := 0; i < opt.Warmup; i++ {
		if _, err := r.Once(); err != nil {
			return nil, err
		}
	}
	var samples []time.Duration
	start := time.Now()
	for len(samples) < max(opt.Runs, 1) || (time.Since(start) < opt.Budget && len(samples) < opt.limit()) {
		d, err := r.Once()
		if err != nil {
			return nil, err
		}
		samples = append(samples, d)
	}
	return samples, nil
}

// Runner times single runs of a session on inputs wrapped once, so that a caller can alternate
// the runs of several models (original and slim) and compare them under the same load.
type Runner struct {
	s    *Session
	vals []uintptr
	free func()
}

// Runner wraps the inputs for timed runs; Close releases them.
func (s *Session) Runner(inputs []Tensor) (*Runner, error) {
	vals, free, err := s.inputValues(inputs)
	if err != nil {
		return nil, err
	}
	return &Runner{s: s, vals: vals, free: free}, nil
}

// Once runs the model once and returns how long the run took; outputs are released uncopied.
func (r *Runner) Once() (time.Duration, error) {
	start := time.Now()
	outs, err := r.s.run(r.vals)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	r.s.releaseAll(outs)
	return d, nil
}

// Close releases the wrapped inputs (not the session).
func (r *Runner) Close() {
	if r.free != nil {
		r.free()
		r.free = nil
	}
}

// RandomInputs makes inputs of the session's declared shapes, with symbolic first dims set to batch
// (RandomTensors). Other symbolic dims are an error naming the input.
func (s *Session) RandomInputs(batch int, seed uint64) ([]Tensor, error) {
	shapes := make([][]int64, len(s.Inputs))
	for i, declared := range s.InputShapes {
		shape := append([]int64(nil), declared...)
		for d := range shape {
			switch {
			case d == 0 && shape[d] < 0:
				shape[d] = int64(batch)
			case shape[d] < 0:
				return nil, fmt.Errorf("ort: %s: input %s has a symbolic dim %d; give its size", s.name, s.Inputs[i], d)
			}
		}
		shapes[i] = shape
	}
	return s.RandomTensors(shapes, seed), nil
}

// RandomTensors makes the session's inputs at the given static shapes: normal random floats, and
// zeros for int64 inputs.
func (s *Session) RandomTensors(shapes [][]int64, seed uint64) []Tensor {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ins := make([]Tensor, len(shapes))
	for i, shape := range shapes {
		t := Tensor{Shape: shape}
		n := t.elements()
		if s.InputInts[i] {
			t.Ints = make([]int64, n)
		} else {
			t.Data = make([]float32, n)
			for j := range t.Data {
				t.Data[j] = float32(rng.NormFloat64())
			}
		}
		ins[i] = t
	}
	return ins
}

// Latency opens a model file with the given intra-op threads and times it on random inputs at the
// given batch (for a symbolic batch dim): the median and spread of opt.Runs runs after opt.Warmup.
func Latency(path string, batch, threads int, opt TimeOptions) (Timing, error) {
	s, err := Open(path, threads)
	if err != nil {
		return Timing{}, err
	}
	defer s.Close()
	ins, err := s.RandomInputs(batch, 1)
	if err != nil {
		return Timing{}, err
	}
	return s.Time(ins, opt)
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/onnx/pb"
	"github.com/chanopt/chanopt/ort"
	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure a model's latency in ONNX Runtime and in chanopt's engine, side by side",
		ArgsUsage: "MODEL",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "batch", Aliases: []string{"b"}, Value: 1, Usage: "images per run (the input's first dim)"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "threads each runtime uses (0: all cores)"},
			&cli.StringSliceFlag{Name: "input-shape", Usage: "fix an input's other free dims: [NAME:]D0,D1,.. (repeatable)"},
			&cli.DurationFlag{Name: "time", Value: 2 * time.Second, Usage: "how long to measure each runtime"},
			&cli.StringFlag{Name: "runtime", Usage: "ort, engine or both (default: both when ONNX Runtime is found, else engine)"},
			&cli.StringFlag{Name: "ort-lib", Usage: "ONNX Runtime's shared library (default: $" + ort.EnvLibrary + ", then the usual places)"},
			&cli.BoolFlag{Name: "json", Usage: "print the JSON result"},
		},
		Action: func(c *cli.Context) error {
			path, err := modelArg(c)
			if err != nil {
				return err
			}
			if c.Int("batch") < 1 {
				return usagef("--batch %d: want 1 or more", c.Int("batch"))
			}
			if err := checkIntFlags(c, map[string][2]int{"batch": {1, maxBatch}, "threads": {0, maxThreads}}); err != nil {
				return err
			}
			if c.Duration("time") <= 0 {
				return usagef("--time %v: want a positive duration", c.Duration("time"))
			}
			runtimes, ortMissing, err := benchRuntimes(c.String("runtime"), c.String("ort-lib"))
			if err != nil {
				return err
			}
			res, err := benchModel(path, runtimes, c.Int("batch"), c.Int("threads"), c.StringSlice("input-shape"), c.Duration("time"))
			if err != nil {
				return err // an error stays the only line
			}
			if ortMissing != "" {
				fmt.Fprintf(c.App.ErrWriter, "chanopt: measured in the engine only: %s\n", ortMissing)
			}
			res.ORTUnavailable = ortMissing
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printBench(c.App.Writer, res)
			return nil
		},
	}
}

// Runtimes `chanopt bench` measures in.
const (
	runtimeORT    = "ort"
	runtimeEngine = "engine"
	runtimeBoth   = "both"
)

// benchRuntimes resolves --runtime: the runtimes to measure, in the order printed, and, when ONNX
// Runtime was wanted by default but not found, why. Asking for ort explicitly without a library
// is an error.
func benchRuntimes(flag, lib string) (runtimes []string, ortMissing string, err error) {
	switch flag {
	case "":
		if err := ort.Load(lib); err != nil {
			return []string{runtimeEngine}, err.Error(), nil
		}
		return []string{runtimeORT, runtimeEngine}, "", nil
	case runtimeEngine:
		return []string{runtimeEngine}, "", nil
	case runtimeORT, runtimeBoth:
		if err := ort.Load(lib); err != nil {
			return nil, "", fmt.Errorf("--runtime %s: %w", flag, err)
		}
		if flag == runtimeORT {
			return []string{runtimeORT}, "", nil
		}
		return []string{runtimeORT, runtimeEngine}, "", nil
	}
	return nil, "", usagef("--runtime %q: want ort, engine or both", flag)
}

// benchTiming is one runtime's measurement.
type benchTiming struct {
	Runtime    string  `json:"runtime"`
	Version    string  `json:"version,omitempty"`
	Batch      int     `json:"batch"`
	Threads    int     `json:"threads"`
	Runs       int     `json:"runs"`
	MsPerBatch float64 `json:"ms_per_batch"` // median
	SpreadMs   float64 `json:"spread_ms"`    // half the interquartile range
	MinMs      float64 `json:"min_ms"`
	MaxMs      float64 `json:"max_ms"`
	ImagesPerS float64 `json:"images_per_s"`
}

// benchResult is the JSON of `chanopt bench --json`: the first runtime's figures at the top level
// (the fields earlier versions printed), every runtime's in runtimes.
type benchResult struct {
	Model string `json:"model"`
	benchTiming
	Runtimes       []benchTiming `json:"runtimes"`
	ORTUnavailable string        `json:"ort_unavailable,omitempty"`
}

// printBench prints one line per runtime, and the ratio when there are two.
func printBench(w io.Writer, res *benchResult) {
	fmt.Fprintf(w, "%s: batch %d, %d threads\n", res.Model, res.Batch, res.Threads)
	for _, r := range res.Runtimes {
		name := r.Runtime
		if r.Version != "" {
			name += " " + r.Version
		}
		fmt.Fprintf(w, "  %-18s %9.3f ms per batch ± %.3f (median ± half IQR of %d runs), %.0f images/s\n",
			name, r.MsPerBatch, r.SpreadMs, r.Runs, r.ImagesPerS)
	}
	if len(res.Runtimes) == 2 && res.Runtimes[0].MsPerBatch > 0 {
		a, b := res.Runtimes[0], res.Runtimes[1]
		fmt.Fprintf(w, "  %s takes %.2f× the time of %s\n", b.Runtime, b.MsPerBatch/a.MsPerBatch, a.Runtime)
	}
}

// benchInputs makes random inputs of the model's declared shapes with the batch dim set.
func benchInputs(m *onnx.Model, batch int, specs []string) ([]*engine.Tensor, error) {
	g := m.Graph
	given, err := parseInputShapes(g, specs)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var ins []*engine.Tensor
	for _, name := range g.Inputs {
		v := g.Values[name]
		s := given[name]
		if s == nil && v != nil {
			s = v.Shape
		}
		if s == nil {
			return nil, fmt.Errorf("input %s has no declared shape: give one with --input-shape", name)
		}
		shape := make([]int, len(s))
		for i, d := range s {
			switch {
			case i == 0 && (!d.Known() || v != nil && len(v.Shape) > 0 && !v.Shape[0].Known()):
				shape[i] = batch // --input-shape fixes the other dims; --batch the batch
			case i == 0 && d.Size != int64(batch) && given[name] == nil:
				return nil, fmt.Errorf("input %s has a fixed batch of %d; --batch %d cannot change it", name, d.Size, batch)
			case d.Known():
				shape[i] = int(d.Size)
			default:
				return nil, fmt.Errorf("input %s has a free dim %d (%s): give its size with --input-shape", name, i, d)
			}
		}
		n := int64(1)
		for _, d := range shape {
			n *= int64(d)
		}
		if n > maxBatchFloats {
			return nil, usagef("--batch %d: input %s of shape %v would hold more than %d values", batch, name, shape, maxBatchFloats)
		}
		t := engine.Zeros(shape...)
		if v != nil && v.Type.IsInt() {
			t = &engine.Tensor{Shape: shape, Ints: make([]int64, t.Len())}
		} else {
			for i := range t.Data {
				t.Data[i] = float32(rng.NormFloat64())
			}
		}
		ins = append(ins, t)
	}
	return ins, nil
}

// benchModel times the model in each runtime on the same random inputs: a few warm-up runs, then
// runs until the time is up (at least 5), summarised by their median and spread.
func benchModel(path string, runtimes []string, batch, threads int, specs []string, budget time.Duration) (*benchResult, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return nil, err
	}
	relaxed := false
	if batch != 1 {
		// A model with its batch fixed at 1 runs larger batches through a copy with a symbolic
		// batch, in both runtimes.
		var fb *fixedBatch
		if m, fb, err = relaxBatch(path, m); err != nil {
			return nil, err
		}
		relaxed = fb != nil
	}
	ins, err := benchInputs(m, batch, specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	res := &benchResult{Model: path}
	for _, rt := range runtimes {
		var r *benchTiming
		switch rt {
		case runtimeORT:
			r, err = benchORT(path, m, relaxed, ins, threads, budget)
		default:
			r, err = benchEngine(m, ins, threads, budget)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, rt, err)
		}
		r.Batch = batch
		res.Runtimes = append(res.Runtimes, *r)
	}
	res.benchTiming = res.Runtimes[0]
	return res, nil
}

// benchWarmup runs are not timed: they fill caches and let each runtime pick its kernels.
const benchWarmup = 3

// timingOf fills a benchTiming from a summary.
func timingOf(name string, t ort.Timing, batch int) *benchTiming {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r := &benchTiming{Runtime: name, Runs: t.Runs, MsPerBatch: ms(t.Median), SpreadMs: ms(t.Spread()),
		MinMs: ms(t.Min), MaxMs: ms(t.Max)}
	if t.Median > 0 {
		r.ImagesPerS = float64(batch) / t.Median.Seconds()
	}
	return r
}

// batchOf is the first input's first dim: the images per run.
func batchOf(ins []*engine.Tensor) int {
	if len(ins) == 0 || len(ins[0].Shape) == 0 {
		return 1
	}
	return ins[0].Shape[0]
}

func benchEngine(m *onnx.Model, ins []*engine.Tensor, threads int, budget time.Duration) (*benchTiming, error) {
	p, err := engine.Compile(m, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	for i := 0; i < benchWarmup; i++ {
		if _, err := p.RunSlice(ins...); err != nil {
			return nil, err
		}
	}
	var times []time.Duration
	start := time.Now()
	for len(times) < 5 || (time.Since(start) < budget && len(times) < 100000) {
		t0 := time.Now()
		if _, err := p.RunSlice(ins...); err != nil {
			return nil, err
		}
		times = append(times, time.Since(t0))
	}
	r := timingOf(runtimeEngine, ort.Summarize(times), batchOf(ins))
	r.Threads = p.Threads()
	return r, nil
}

// benchORT times the model file in ONNX Runtime on the engine's inputs (same values, shared
// memory), matched to the session's inputs by name.
func benchORT(path string, m *onnx.Model, relaxed bool, ins []*engine.Tensor, threads int, budget time.Duration) (*benchTiming, error) {
	var s *ort.Session
	var err error
	if relaxed {
		// The file says batch 1: ONNX Runtime gets the copy with a symbolic batch.
		var pm *pb.ModelProto
		var b []byte
		if pm, err = m.Export(); err == nil {
			if b, err = onnx.Encode(pm); err == nil {
				s, err = ort.OpenBytes(path, b, threads)
			}
		}
	} else {
		s, err = ort.Open(path, threads)
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()
	byName := map[string]*engine.Tensor{}
	for i, name := range m.Graph.Inputs {
		byName[name] = ins[i]
	}
	oins := make([]ort.Tensor, len(s.Inputs))
	for i, name := range s.Inputs {
		t := byName[name]
		if t == nil {
			return nil, fmt.Errorf("ONNX Runtime wants input %s, which the model does not declare", name)
		}
		shape := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = int64(d)
		}
		oins[i] = ort.Tensor{Shape: shape, Data: t.Data, Ints: t.Ints}
	}
	tm, err := s.Time(oins, ort.TimeOptions{Warmup: benchWarmup, Runs: 5, Budget: budget})
	if err != nil {
		return nil, err
	}
	r := timingOf(runtimeORT, tm, batchOf(ins))
	r.Version, _ = ort.Version()
	r.Threads = threads
	return r, nil
}

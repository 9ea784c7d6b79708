package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure a model's speed on chanopt's engine",
		ArgsUsage: "MODEL",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "batch", Aliases: []string{"b"}, Value: 1, Usage: "images per run (the input's first dim)"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "goroutines to run on (0: all cores)"},
			&cli.StringSliceFlag{Name: "input-shape", Usage: "fix an input's other free dims: [NAME:]D0,D1,.. (repeatable)"},
			&cli.DurationFlag{Name: "time", Value: 2 * time.Second, Usage: "how long to measure"},
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
			res, err := benchModel(path, c.Int("batch"), c.Int("threads"), c.StringSlice("input-shape"), c.Duration("time"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(c.App.Writer, "%s: batch %d, %d threads: %.3f ms per batch (median of %d runs), %.0f images/s\n",
				path, res.Batch, res.Threads, res.MsPerBatch, res.Runs, res.ImagesPerS)
			return nil
		},
	}
}

// benchResult is the JSON of `chanopt bench --json`.
type benchResult struct {
	Model      string  `json:"model"`
	Batch      int     `json:"batch"`
	Threads    int     `json:"threads"`
	Runs       int     `json:"runs"`
	MsPerBatch float64 `json:"ms_per_batch"`
	ImagesPerS float64 `json:"images_per_s"`
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

// benchModel times runs of the model: a few warm-up runs, then runs until the time is up (at
// least 5), and reports the median.
func benchModel(path string, batch, threads int, specs []string, budget time.Duration) (*benchResult, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return nil, err
	}
	if batch != 1 {
		// A model with its batch fixed at 1 runs larger batches through a copy with a symbolic batch.
		if m, _, err = relaxBatch(path, m); err != nil {
			return nil, err
		}
	}
	ins, err := benchInputs(m, batch, specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := engine.Compile(m, engine.Options{Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer p.Close()
	for i := 0; i < 3; i++ {
		if _, err := p.RunSlice(ins...); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	var times []float64
	start := time.Now()
	for len(times) < 5 || (time.Since(start) < budget && len(times) < 100000) {
		t0 := time.Now()
		if _, err := p.RunSlice(ins...); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		times = append(times, float64(time.Since(t0))/float64(time.Millisecond))
	}
	sort.Float64s(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	return &benchResult{Model: path, Batch: batch, Threads: p.Threads(), Runs: len(times), MsPerBatch: med,
		ImagesPerS: float64(batch) / med * 1000}, nil
}

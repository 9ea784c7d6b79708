package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/urfave/cli/v2"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a model on one input tensor with chanopt's engine",
		ArgsUsage: "MODEL",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "the input tensor (.npy, float32 or int; required)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the first output here (.npy) instead of printing it"},
			&cli.IntFlag{Name: "threads", Usage: "goroutines to run on (0: all cores)"},
		},
		Action: func(c *cli.Context) error {
			path, err := modelArg(c)
			if err != nil {
				return err
			}
			if c.String("input") == "" {
				return usagef("run: --input X.npy is required")
			}
			return runModel(c, c.App.Writer, path, c.String("input"), c.String("output"), c.Int("threads"))
		},
	}
}

// runModel runs the model's first output on one .npy input and writes or prints it.
func runModel(c *cli.Context, w io.Writer, path, inPath, outPath string, threads int) error {
	if threads < 0 || threads > maxThreads {
		return usagef("--threads %d: want 0 to %d", threads, maxThreads)
	}
	m, err := onnx.Load(path)
	if err != nil {
		return err
	}
	plan := newPlan(c)
	if outPath != "" {
		plan.inputModel(path, m)
		plan.input("--input", inPath)
		if err := plan.output("-o", outPath); err != nil {
			return err
		}
	}
	if len(m.Graph.Inputs) != 1 {
		return fmt.Errorf("%s: the model has %d inputs (%s); run feeds exactly one", path, len(m.Graph.Inputs), strings.Join(m.Graph.Inputs, ", "))
	}
	arr, err := npy.ReadFile(inPath)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	x := &engine.Tensor{Shape: arr.Shape, Data: arr.Float32, Ints: arr.Int64}
	if v := m.Graph.Values[m.Graph.Inputs[0]]; v != nil && v.Type.IsFloat() && x.IsInt() {
		// integer pixels fed to a float model
		x.Data = make([]float32, len(arr.Int64))
		for i, v := range arr.Int64 {
			x.Data[i] = float32(v)
		}
		x.Ints = nil
	}
	p, err := engine.Compile(m, engine.Options{Threads: threads})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer p.Close()
	outs, err := p.RunSlice(x)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", path, inPath, err)
	}
	y := outs[0]
	if outPath != "" {
		a := &npy.Array{Shape: y.Shape}
		if y.IsInt() {
			a.Int64 = y.Ints
		} else {
			a.Float32 = y.Data
		}
		var b bytes.Buffer
		if err := npy.Write(&b, a); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		plan.set(outPath, b.Bytes())
		return plan.commit(false)
	}
	printOutput(w, p.Outputs()[0], y)
	return nil
}

// printOutput shows an output's shape, then its argmax per row for a batch of score rows, or its
// first values otherwise.
func printOutput(w io.Writer, name string, y *engine.Tensor) {
	fmt.Fprintf(w, "output %s: shape %v\n", name, y.Shape)
	if len(y.Shape) == 2 && !y.IsInt() && y.Shape[1] > 1 {
		am := y.Argmax()
		for r, k := range am {
			if r == 20 {
				fmt.Fprintf(w, "... (%d more rows)\n", len(am)-r)
				break
			}
			fmt.Fprintf(w, "row %d: argmax %d (%.4g)\n", r, k, y.Data[r*y.Shape[1]+k])
		}
		return
	}
	n := min(y.Len(), 10)
	vals := make([]string, n)
	for i := range vals {
		if y.IsInt() {
			vals[i] = fmt.Sprint(y.Ints[i])
		} else {
			vals[i] = fmt.Sprintf("%.6g", y.Data[i])
		}
	}
	more := ""
	if y.Len() > n {
		more = fmt.Sprintf(" ... (%d values)", y.Len())
	}
	fmt.Fprintf(w, "values: %s%s\n", strings.Join(vals, " "), more)
}

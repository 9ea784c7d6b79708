package main

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/urfave/cli/v2"
)

// Bounds on the sizes a user controls with flags: optimizer's where the flag is one of its options.
// Each is far beyond any sensible run and well below what would exhaust memory before the run
// could say so.
const (
	maxBatch      = optimizer.MaxBatch
	maxThreads    = optimizer.MaxThreads
	maxSamples    = 1 << 28
	maxSynthetic  = optimizer.MaxSynthetic
	maxIterations = optimizer.MaxIterations
	maxRoundTo    = optimizer.MaxRoundTo
	maxEpochs     = optimizer.MaxEpochs
	// maxBatchFloats bounds one batch of input images (1 GiB of float32); activations are larger.
	maxBatchFloats = 1 << 28
)

// checkIntFlags checks the integer flags of a command that are set: each name maps to its
// allowed range [lo, hi]. The error is a usage error naming the flag.
func checkIntFlags(c *cli.Context, ranges map[string][2]int) error {
	for _, name := range sortedNames(ranges) {
		if !c.IsSet(name) {
			continue
		}
		v, r := c.Int(name), ranges[name]
		if v < r[0] || v > r[1] {
			return usagef("--%s %d: want %d to %d", name, v, r[0], r[1])
		}
	}
	return nil
}

// checkFloatFlag checks a float flag when set: finite, and within (lo, hi] (open at lo when open).
func checkFloatFlag(c *cli.Context, name string, lo, hi float64, open bool) error {
	if !c.IsSet(name) {
		return nil
	}
	v := c.Float64(name)
	bad := math.IsNaN(v) || math.IsInf(v, 0) || v > hi || v < lo || open && v == lo
	if bad {
		if open {
			return usagef("--%s %v: want more than %v and at most %v", name, v, lo, hi)
		}
		return usagef("--%s %v: want %v to %v", name, v, lo, hi)
	}
	return nil
}

// checkDurationFlag checks that a duration flag, when set, is positive (or zero where zero0 says
// what zero means).
func checkDurationFlag(c *cli.Context, name, zero0 string) error {
	if c.IsSet(name) && c.Duration(name) == 0 && zero0 != "" {
		return nil
	}
	if c.IsSet(name) && c.Duration(name) <= 0 {
		if zero0 != "" {
			return usagef("--%s %v: want a positive duration, or 0 for %s", name, c.Duration(name), zero0)
		}
		return usagef("--%s %v: want a positive duration", name, c.Duration(name))
	}
	return nil
}

// checkDataFlags checks the flags of dataFlags.
func checkDataFlags(c *cli.Context) error {
	if err := checkIntFlags(c, map[string][2]int{"samples": {1, maxSamples}, "batch": {1, maxBatch},
		"threads": {0, maxThreads}}); err != nil {
		return err
	}
	if c.IsSet("labels") && !c.IsSet("data") {
		return usagef("%s: --labels needs --data", c.Command.Name)
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// outputClasses is the width of the model's first output at the given input shapes, when it is
// a 2-D score matrix [batch, classes]; 0 when it is not or cannot be inferred.
func outputClasses(m *onnx.Model, shapes map[string]onnx.Shape) int {
	if len(m.Graph.Outputs) == 0 {
		return 0
	}
	tmp := m.Clone()
	if _, err := onnx.InferShapes(tmp, onnx.InferOptions{Inputs: shapes, Lenient: true}); err != nil {
		return 0
	}
	v := tmp.Graph.Values[m.Graph.Outputs[0]]
	if v == nil || len(v.Shape) != 2 || !v.Shape[1].Known() {
		return 0
	}
	return int(v.Shape[1].Size)
}

// checkLabels refuses labels outside the model's classes, naming the first bad one and its index,
// before any work is done on them.
func checkLabels(c *cli.Context, m *onnx.Model, shapes map[string]onnx.Shape, set *dataset.Set) error {
	if set == nil || set.Labels == nil {
		return nil
	}
	k := outputClasses(m, shapes)
	if k <= 0 {
		return nil
	}
	if c.String("labels") == "" && len(set.Classes) != k {
		// Class folders name their own classes; their sorted order gives the model's class
		// indices only when there are as many folders as the model has outputs. Otherwise an
		// accuracy would compare unrelated indices (a 4-folder set on a 1,000-class model scored
		// 0%): agreement with the original is all that can be measured.
		set.Labels = nil
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, "chanopt: %s has %d class folders and the model %d outputs: the folders are not its classes, so no accuracy is reported (agreement with the original only)\n",
				c.String("data"), len(set.Classes), k)
		}
		return nil
	}
	for i, l := range set.Labels {
		if l < 0 || l >= k {
			return fmt.Errorf("labels: %s: label %d of image %d is outside the model's %d classes (0 to %d)",
				labelsName(c), l, i, k, k-1)
		}
	}
	return nil
}

func labelsName(c *cli.Context) string {
	if p := c.String("labels"); p != "" {
		return p
	}
	return c.String("data") + " (class folders)"
}

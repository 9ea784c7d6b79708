package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/ort"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// TestShrinkHalvesMACsEverywhere runs `shrink --macs 0.5 --no-distill` on every zoo and bundled
// model: the result must keep 40-55% of the MACs, pass onnx.checker, and run in ONNX Runtime with
// the original's output shapes.
func TestShrinkHalvesMACsEverywhere(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	paths := append(testenv.BundledModelsIfAny(t), testenv.ZooModels(t)...)
	given := map[string][]int64{}
	for _, f := range testenv.ForeignModels(t) {
		paths = append(paths, f.Path)
		given[f.Path] = f.InputShape
	}
	dir := t.TempDir()
	var slim []string
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		out := filepath.Join(dir, name+".slim.onnx")
		rep := filepath.Join(dir, name+".json")
		args := []string{"shrink", p, "--macs", "0.5", "--no-distill", "-o", out, "--report", rep, "-q"}
		var inShape map[string]onnx.Shape
		if s, ok := given[p]; ok {
			args = append(args, "--input-shape", shapeFlag(s))
			inShape = map[string]onnx.Shape{}
		}
		code, _, stderr := runCLI(args...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, stderr)
			continue
		}
		var r shrinkReport
		b, _ := os.ReadFile(rep)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: report: %v", name, err)
		}
		ratio := float64(r.After.MACs) / float64(r.Before.MACs)
		t.Logf("%s: MACs %d → %d (%.3f), params %d → %d", name, r.Before.MACs, r.After.MACs, ratio, r.Before.Params, r.After.Params)
		if ratio < 0.40 || ratio > 0.55 {
			t.Errorf("%s: kept %.3f of the MACs, want 0.40-0.55", name, ratio)
		}
		orig, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if inShape != nil {
			inShape[orig.Graph.Inputs[0]] = onnx.ShapeOf(given[p]...)
		}
		shapes, err := onnx.BatchOne(orig.Graph, inShape)
		if err != nil {
			t.Fatal(err)
		}
		var ins []ort.Tensor
		rng := rand.New(rand.NewPCG(3, 4))
		for _, in := range orig.Graph.Inputs {
			s := shapes[in].Sizes()
			data := make([]float32, shapes[in].NumElements())
			for i := range data {
				data[i] = float32(rng.NormFloat64())
			}
			ins = append(ins, ort.Tensor{Shape: s, Data: data})
		}
		want, err := ort.Run(p, ins)
		if err != nil {
			t.Fatalf("%s: original: %v", name, err)
		}
		got, err := ort.Run(out, ins)
		if err != nil {
			t.Errorf("%s: slim model does not run in ONNX Runtime: %v", name, err)
			continue
		}
		for i := range want {
			if !equalShape(want[i].Shape, got[i].Shape) {
				t.Errorf("%s: output %d has shape %v, original %v", name, i, got[i].Shape, want[i].Shape)
			}
		}
		slim = append(slim, out)
	}
	if len(slim) > 0 {
		testenv.CheckModels(t, slim...)
	}
}

func shapeFlag(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return strings.Join(parts, ",")
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

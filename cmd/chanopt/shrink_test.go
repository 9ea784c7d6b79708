package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
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
		// --allow-slower: this test is about structure; some foreign models are so small that
		// ONNX Runtime runs their halves no faster at batch 1 (runtime_test.go checks the verdict).
		args := []string{"shrink", p, "--macs", "0.5", "--no-distill", "--iterations", "600", "--allow-slower", "-o", out, "--report", rep, "-q"}
		if strings.HasPrefix(p, testenv.ZooDir()) {
			// The 224×224 zoo tests the structure: the uniform split is enough and keeps CI short;
			// the annealer runs on the bundled and foreign models.
			args = append(args, "--search", "uniform")
		}
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

// TestShrinkSeedDeterminism: the same seed gives the same bytes (model and report); another seed
// explores other widths; and the annealer does not simply split uniformly. The second run writes
// with --sync (fsync before the rename), which must not change a byte.
func TestShrinkSeedDeterminism(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	dir := t.TempDir()
	shrink := func(tag, seed string, extra ...string) ([]byte, shrinkReport) {
		out := filepath.Join(dir, tag+".onnx")
		rep := filepath.Join(dir, tag+".json")
		args := []string{"shrink", src, "--macs", "0.5", "--no-distill", "--seed", seed, "--iterations", "1500",
			"--round-to", "1", "--allow-slower", "-o", out, "--report", rep, "-q"}
		code, _, stderr := runCLI(append(args, extra...)...)
		if code != 0 {
			t.Fatalf("seed %s: %s", seed, stderr)
		}
		b, _ := os.ReadFile(out)
		var r shrinkReport
		rb, _ := os.ReadFile(rep)
		if err := json.Unmarshal(withoutTimings(t, rb), &r); err != nil {
			t.Fatal(err)
		}
		return b, r
	}
	a1, r1 := shrink("a1", "1")
	a2, r2 := shrink("a2", "1", "--sync")
	b, rb := shrink("b", "2")
	if string(a1) != string(a2) {
		t.Error("same seed, different model bytes")
	}
	r1.Output, r2.Output = "", ""
	j1, _ := json.Marshal(r1)
	j2, _ := json.Marshal(r2)
	if string(j1) != string(j2) {
		t.Error("same seed, different reports")
	}
	widths := func(r shrinkReport) string {
		var s []string
		for _, g := range r.Groups {
			s = append(s, fmt.Sprintf("%d/%d", g.Kept, g.Channels))
		}
		return strings.Join(s, " ")
	}
	t.Logf("seed 1: %s; seed 2: %s", widths(r1), widths(rb))
	if widths(r1) == widths(rb) && string(a1) == string(b) {
		t.Error("seeds 1 and 2 found the same widths")
	}
	// Keep ratios across prunable groups must spread when the metrics differ.
	lo, hi := 1.0, 0.0
	for _, g := range r1.Groups {
		if g.Prunable {
			f := float64(g.Kept) / float64(g.Channels)
			lo, hi = math.Min(lo, f), math.Max(hi, f)
		}
	}
	if hi-lo < 0.1 {
		t.Errorf("keep ratios span only %.2f-%.2f: the allocation is uniform", lo, hi)
	}
	ratio := float64(r1.After.MACs) / float64(r1.Before.MACs)
	if ratio > 0.5 || ratio < 0.475 {
		t.Errorf("kept %.4f of the MACs for a 0.5 budget (want within 5%% below)", ratio)
	}
}

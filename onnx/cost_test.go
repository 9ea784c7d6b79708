package onnx_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// costAtBatchOne is what `chanopt inspect` reports: params, and MACs at batch 1.
func costAtBatchOne(t *testing.T, path string) onnx.Cost {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := onnx.BatchOne(m.Graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.InferShapes(m, onnx.InferOptions{Inputs: shapes, Fold: true}); err != nil {
		t.Fatal(err)
	}
	c, err := onnx.MeasureCost(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCostMatchesIndependentCount compares params and MACs with an independent count in Python
// (ONNX's own shape inference for the bundled models, PyTorch forward hooks for the zoo).
func TestCostMatchesIndependentCount(t *testing.T) {
	testenv.RequirePythonModules(t, "onnx", "numpy", "torch", "torchvision")
	paths := append(testenv.BundledModelsIfAny(t), testenv.ZooModels(t)...)
	script := filepath.Join(testenv.RepoRoot(t), "onnx", "testdata", "count_cost.py")
	out, err := exec.Command(testenv.Python(), append([]string{script}, paths...)...).Output()
	if err != nil {
		t.Fatalf("count_cost.py: %v\n%s", err, out)
	}
	type ref struct {
		Path   string `json:"path"`
		Params int64  `json:"params"`
		MACs   int64  `json:"macs"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(paths) {
		t.Fatalf("count_cost.py printed %d results for %d models", len(lines), len(paths))
	}
	for _, line := range lines {
		var r ref
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		c := costAtBatchOne(t, r.Path)
		name := filepath.Base(r.Path)
		if c.Params != r.Params || c.MACs != r.MACs {
			t.Errorf("%s: chanopt params %d MACs %d; independent count params %d MACs %d", name, c.Params, c.MACs, r.Params, r.MACs)
		} else {
			t.Logf("%s: params %d, MACs %d: equal", name, c.Params, c.MACs)
		}
	}
}

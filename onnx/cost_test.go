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

// TestNodeMACsAt: per-node MACs at given input shapes, for each op the cost model counts, on a model
// whose batch is symbolic; the model's own value table keeps its symbolic shapes.
func TestNodeMACsAt(t *testing.T) {
	g := &onnx.Graph{Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}}
	init := func(name string, dims ...int64) {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		g.Inits[name] = onnx.NewFloatTensor(name, dims, make([]float32, n))
		g.InitOrder = append(g.InitOrder, name)
		g.Values[name] = &onnx.Value{Name: name, Type: onnx.Float, Shape: onnx.ShapeOf(dims...)}
	}
	node := func(op string, in []string, out string, attrs map[string]*onnx.Attr) *onnx.Node {
		if attrs == nil {
			attrs = map[string]*onnx.Attr{}
		}
		n := &onnx.Node{Name: out, OpType: op, Inputs: in, Outputs: []string{out}, Attrs: attrs}
		g.Nodes = append(g.Nodes, n)
		return n
	}
	ints := func(v ...int64) *onnx.Attr { return &onnx.Attr{Kind: onnx.AttrInts, Ints: v} }
	g.Inputs = []string{"x"}
	g.Values["x"] = &onnx.Value{Name: "x", Type: onnx.Float, Shape: onnx.Shape{{Size: -1, Param: "N"}, onnx.D(4), onnx.D(8), onnx.D(8)}}
	init("w1", 6, 2, 3, 3)
	conv := node("Conv", []string{"x", "w1"}, "c", map[string]*onnx.Attr{"group": {Kind: onnx.AttrInt, I: 2},
		"auto_pad": {Kind: onnx.AttrString, S: "SAME_UPPER"}, "strides": ints(2, 2)})
	init("w2", 6, 3, 2, 2)
	convT := node("ConvTranspose", []string{"c", "w2"}, "ct", map[string]*onnx.Attr{"strides": ints(2, 2)})
	relu := node("Relu", []string{"ct"}, "r", nil)
	flat := node("Flatten", []string{"r"}, "f", nil)
	init("w3", 3*8*8, 5)
	mm := node("MatMul", []string{"f", "w3"}, "m", nil)
	init("w4", 7, 5)
	gemm := node("Gemm", []string{"m", "w4"}, "y", map[string]*onnx.Attr{"transB": {Kind: onnx.AttrInt, I: 1}})
	g.Outputs = []string{"y"}
	m := &onnx.Model{Opsets: map[string]int64{"": 13}, Graph: g}

	got, err := onnx.NodeMACsAt(m, map[string]onnx.Shape{"x": onnx.ShapeOf(2, 4, 8, 8)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[*onnx.Node]int64{
		conv:  2 * 6 * 4 * 4 * 2 * 3 * 3, // out elements × C_in/group × kernel
		convT: 2 * 6 * 4 * 4 * 3 * 2 * 2, // in elements × C_out/group × kernel
		relu:  0, flat: 0,
		mm:   2 * 5 * 3 * 8 * 8,
		gemm: 2 * 7 * 5,
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %d MACs, want %d", n.Label(), got[n], w)
		}
	}
	if s := g.Values["c"]; s != nil && s.Shape != nil {
		t.Errorf("NodeMACsAt wrote the shape %v into the model", s.Shape)
	}
	c, err := onnx.CostAt(m, map[string]onnx.Shape{"x": onnx.ShapeOf(1, 4, 8, 8)})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, w := range want {
		total += w
	}
	if c.MACs != total/2 || c.Params != 6*2*9+6*3*4+3*64*5+7*5 {
		t.Errorf("CostAt at batch 1: %d MACs, %d params; want %d, %d", c.MACs, c.Params, total/2, 6*2*9+6*3*4+3*64*5+7*5)
	}
}

package onnx_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// foreignModels are the files models/foreign/make_foreign.py writes: exports that imitate tools other
// than a plain PyTorch opset-13 export (tf2onnx NHWC, opset 9/11 with Constant-node weights and
// symbolic spatial dims, HardSwish/HardSigmoid, an FPN head, training-mode BatchNormalization).
var foreignModels = []struct {
	name     string
	opset    int64
	producer string
	// symbolicSpatial: the input is N x 3 x H x W, so BatchOne must refuse it and the shape is given.
	symbolicSpatial bool
}{
	{"tf2onnx_nhwc", 13, "tf2onnx", false},
	{"opset9_constants", 9, "pytorch", true},
	{"opset11_constants", 11, "pytorch", true},
	{"hardswish_se", 14, "pytorch", false},
	{"detection_head", 13, "pytorch", false},
	{"bn_training_mode", 14, "pytorch", false},
}

// foreignCost is <name>.cost.json: params and MACs counted in Python (float constants of the file;
// PyTorch forward hooks for MACs) at the batch-1 input shape it names.
type foreignCost struct {
	Params     int64   `json:"params"`
	MACs       int64   `json:"macs"`
	InputName  string  `json:"input_name"`
	InputShape []int64 `json:"input_shape"`
	Checker    string  `json:"checker"`
	Script     string  `json:"script_sha256"`
}

// foreignDir is where the foreign models are cached: $CHANOPT_FOREIGN, else ~/.cache/chanopt/foreign.
func foreignDir(t *testing.T) string {
	if d := os.Getenv("CHANOPT_FOREIGN"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(t.TempDir(), "foreign")
	}
	return filepath.Join(home, ".cache", "chanopt", "foreign")
}

// foreignFiles makes sure every foreign model's files exist and were made by the current
// make_foreign.py (its sha256 is in each cost.json), running the script when some are missing or
// stale, and returns the folder.
func foreignFiles(t *testing.T) string {
	t.Helper()
	dir := foreignDir(t)
	script := filepath.Join(testenv.RepoRoot(t), "models", "foreign", "make_foreign.py")
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	current := hex.EncodeToString(sum[:])
	var missing, stale []string
	for _, fm := range foreignModels {
		for _, ext := range []string{".onnx", ".input.npy", ".expected.npy", ".cost.json"} {
			if _, err := os.Stat(filepath.Join(dir, fm.name+ext)); err != nil {
				missing = append(missing, fm.name+ext)
			}
		}
		var c foreignCost
		if raw, err := os.ReadFile(filepath.Join(dir, fm.name+".cost.json")); err == nil {
			if json.Unmarshal(raw, &c) != nil || c.Script != current {
				stale = append(stale, fm.name)
			}
		}
	}
	if len(missing) == 0 && len(stale) == 0 {
		return dir
	}
	testenv.RequirePythonModules(t, "onnx", "numpy", "torch")
	args := []string{script, dir}
	if len(stale) > 0 {
		args = append(args, "--force")
	}
	out, err := exec.Command(testenv.Python(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make_foreign.py %s (missing %v, stale %v): %v\n%s", dir, missing, stale, err, out)
	}
	return dir
}

// TestForeignExportsLoadAndCost loads each foreign export, infers its shapes at batch 1 (with the
// spatial size given where the file leaves it symbolic) and checks params and MACs against the
// independent count make_foreign.py wrote, and the first output's shape against the reference output.
func TestForeignExportsLoadAndCost(t *testing.T) {
	dir := foreignFiles(t)
	for _, fm := range foreignModels {
		t.Run(fm.name, func(t *testing.T) {
			base := filepath.Join(dir, fm.name)
			raw, err := os.ReadFile(base + ".cost.json")
			if err != nil {
				t.Fatal(err)
			}
			var want foreignCost
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("%s.cost.json: %v", fm.name, err)
			}
			m, err := onnx.Load(base + ".onnx")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if m.Opset() != fm.opset {
				t.Errorf("opset %d, want %d", m.Opset(), fm.opset)
			}
			if got := m.Source.GetProducerName(); got != fm.producer {
				t.Errorf("producer %q, want %q", got, fm.producer)
			}
			g := m.Graph
			if len(g.Inputs) != 1 || g.Inputs[0] != want.InputName {
				t.Fatalf("inputs %v, want [%s]", g.Inputs, want.InputName)
			}
			given := onnx.ShapeOf(want.InputShape...)
			shapes, err := onnx.BatchOne(g, nil)
			if fm.symbolicSpatial {
				if err == nil || !strings.Contains(err.Error(), want.InputName) {
					t.Errorf("BatchOne on %v: err %v, want an error naming input %q", g.Values[want.InputName].Shape, err, want.InputName)
				}
				shapes = map[string]onnx.Shape{want.InputName: given}
			} else if err != nil {
				t.Fatalf("BatchOne: %v", err)
			} else if !shapes[want.InputName].Equal(given) {
				t.Errorf("BatchOne gives %v, want %v", shapes[want.InputName], given)
			}
			if _, err := onnx.InferShapes(m, onnx.InferOptions{Inputs: shapes, Fold: true}); err != nil {
				t.Fatalf("InferShapes at %v: %v", shapes, err)
			}
			c, err := onnx.MeasureCost(m)
			if err != nil {
				t.Fatalf("MeasureCost: %v", err)
			}
			if c.Params != want.Params || c.MACs != want.MACs {
				t.Errorf("chanopt params %d MACs %d; independent count params %d MACs %d", c.Params, c.MACs, want.Params, want.MACs)
			} else {
				t.Logf("params %d, MACs %d: equal (onnx.checker: %s)", c.Params, c.MACs, want.Checker)
			}
			exp, err := npy.ReadFile(base + ".expected.npy")
			if err != nil {
				t.Fatal(err)
			}
			wantOut := make(onnx.Shape, len(exp.Shape))
			for i, d := range exp.Shape {
				wantOut[i] = onnx.D(int64(d))
			}
			wantOut[0] = onnx.D(1) // the reference ran at batch 2, inference at batch 1
			if got := g.Values[g.Outputs[0]].Shape; !got.Equal(wantOut) {
				t.Errorf("output %s inferred %v, want %v", g.Outputs[0], got, wantOut)
			}
		})
	}
}

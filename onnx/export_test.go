package onnx

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx/pb"
	"github.com/chanopt/chanopt/ort"
	"google.golang.org/protobuf/proto"
)

// conformanceModels lists every model.onnx of ONNX's conformance data.
func conformanceModels(t *testing.T) []string {
	dir := testenv.RequireConformance(t)
	var paths []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "model.onnx" {
			paths = append(paths, p)
		}
		return nil
	})
	if len(paths) < 1000 {
		t.Fatalf("only %d conformance models under %s", len(paths), dir)
	}
	return paths
}

// TestImportExportKeepsWhatDidNotChange imports every conformance model into the IR and exports it
// again. Models import leaves alone must come back byte for byte; the others (Constant nodes turned
// into initializers, constant arguments lifted into attributes) must pass onnx.checker and must
// import again to the same IR.
func TestImportExportKeepsWhatDidNotChange(t *testing.T) {
	paths := conformanceModels(t)
	same, changed, ran := 0, 0, 0
	var changedFiles []string
	tmp := t.TempDir()
	for _, p := range paths {
		mp, err := ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		orig, _ := Encode(mp)
		m, err := Import(mp)
		if err != nil {
			// Segmented tensors and malformed test inputs are refused with an error, never a panic.
			t.Logf("%s: import refused: %v", p, err)
			continue
		}
		ep, err := m.Export()
		if err != nil {
			t.Errorf("%s: export: %v", p, err)
			continue
		}
		got, err := Encode(ep)
		if err != nil {
			t.Errorf("%s: encode: %v", p, err)
			continue
		}
		if bytes.Equal(orig, got) {
			same++
			continue
		}
		changed++
		if !normalised(m, len(mp.Graph.Node), len(mp.Graph.Initializer)) {
			t.Errorf("%s: export changed a model import had nothing to normalise in", p)
		}
		m2, err := Import(ep)
		if err != nil {
			t.Errorf("%s: re-import: %v", p, err)
			continue
		}
		if len(m2.Graph.Nodes) != len(m.Graph.Nodes) || len(m2.Graph.Inits) != len(m.Graph.Inits) {
			t.Errorf("%s: re-import has %d nodes and %d initializers, want %d and %d", p,
				len(m2.Graph.Nodes), len(m2.Graph.Inits), len(m.Graph.Nodes), len(m.Graph.Inits))
		}
		out := filepath.Join(tmp, filepath.Base(filepath.Dir(p))+".onnx")
		if err := WriteFile(out, ep, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		changedFiles = append(changedFiles, out)
		ran += runMatchesStored(t, out, p)
	}
	t.Logf("%d normalised models run in ONNX Runtime against their stored outputs", ran)
	t.Logf("%d models exported byte for byte, %d normalised", same, changed)
	if same < 800 {
		t.Errorf("only %d models came back byte for byte", same)
	}
	if len(changedFiles) > 0 {
		testenv.CheckModels(t, changedFiles...)
	}
}

// normalised reports whether import rewrote the model: nodes folded away (Constant, Identity of an
// initializer), initializers added or dropped, or constant arguments lifted into attributes.
func normalised(m *Model, nodes, inits int) bool {
	if len(m.Graph.Nodes) != nodes || len(m.Graph.Inits) != inits {
		return true
	}
	for _, n := range m.Graph.Nodes {
		if len(n.ParamNames) > 0 {
			return true
		}
	}
	return false
}

// runMatchesStored runs an exported model, when ONNX Runtime runs the original, in ONNX Runtime on its test's stored inputs and compares
// with the stored outputs, when every input and output is a float32 tensor. It returns 1 if it ran.
func runMatchesStored(t *testing.T, model, original string) int {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "%v", err)
		return 0
	}
	testDir := filepath.Dir(original)
	if s, err := ort.Open(original, 1); err != nil {
		return 0 // ONNX Runtime cannot run the original either (opsets it dropped)
	} else {
		s.Close()
	}
	read := func(name string) (*Tensor, bool) {
		raw, err := os.ReadFile(filepath.Join(testDir, "test_data_set_0", name))
		if err != nil {
			return nil, false
		}
		tp := &pb.TensorProto{}
		if proto.Unmarshal(raw, tp) != nil || tp.GetDataType() != int32(Float) {
			return nil, false
		}
		tt, err := TensorFromProto(tp)
		return tt, err == nil
	}
	var ins []ort.Tensor
	for i := 0; ; i++ {
		tt, ok := read(fmt.Sprintf("input_%d.pb", i))
		if !ok {
			if _, err := os.Stat(filepath.Join(testDir, "test_data_set_0", fmt.Sprintf("input_%d.pb", i))); err == nil {
				return 0 // a non-float input: not for this harness
			}
			break
		}
		ins = append(ins, ort.Tensor{Shape: tt.Dims, Data: tt.Floats})
	}
	var want []*Tensor
	for i := 0; ; i++ {
		tt, ok := read(fmt.Sprintf("output_%d.pb", i))
		if !ok {
			if _, err := os.Stat(filepath.Join(testDir, "test_data_set_0", fmt.Sprintf("output_%d.pb", i))); err == nil {
				return 0
			}
			break
		}
		want = append(want, tt)
	}
	s, err := ort.Open(model, 1)
	if err != nil {
		t.Errorf("%s: %v", model, err)
		return 0
	}
	defer s.Close()
	if len(s.Inputs) != len(ins) {
		return 0
	}
	got, err := s.Run(ins)
	if err != nil {
		t.Errorf("%s: %v", model, err)
		return 0
	}
	for i, w := range want {
		for j, v := range w.Floats {
			g := got[i].Data[j]
			if math.Abs(float64(g-v)) > 1e-4+1e-3*math.Abs(float64(v)) {
				t.Errorf("%s: output %d[%d] = %g, stored %g", model, i, j, g, v)
				break
			}
		}
	}
	return 1
}

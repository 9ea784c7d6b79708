package optimizer

import (
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// withSoftmax returns resnet8 with a Softmax after its logits; with both, the logits stay a
// second graph output.
func withSoftmax(t *testing.T, both bool) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	logits := m.Graph.Outputs[0]
	m.Graph.Nodes = append(m.Graph.Nodes, &onnx.Node{Name: "probs", OpType: "Softmax", Inputs: []string{logits}, Outputs: []string{"probs"},
		Attrs: map[string]*onnx.Attr{"axis": {Kind: onnx.AttrInt, I: 1}}})
	m.Graph.Values["probs"] = &onnx.Value{Name: "probs", Type: onnx.Float}
	m.Graph.Outputs = []string{"probs"}
	if both {
		m.Graph.Outputs = append(m.Graph.Outputs, logits)
	}
	return m
}

// TestDistillOutputKinds repairs three-quarter-width students of models whose outputs are probabilities,
// or probabilities and logits at once: the report names each output's kind, the fine-tuning runs
// on the losses of all of them and improves on the refit, and the repaired student agrees with
// the original on most held-back images.
func TestDistillOutputKinds(t *testing.T) {
	set := labelledCalib(t, 800)
	calib, val := set.Split(0.25, 1)
	for _, tc := range []struct {
		name  string
		both  bool
		kinds []OutputKind
	}{
		{"softmax", false, []OutputKind{KindProbabilities}},
		{"softmax and logits", true, []OutputKind{KindProbabilities, KindLogits}},
	} {
		m := withSoftmax(t, tc.both)
		a, keep, student := threeQuarterSlice(t, m)
		corr, err := a.Correspond(keep)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Distill(m, student, corr, calib, val, DistillOptions{Batch: 64, Threads: 2, Epochs: 3, Seed: 1})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(rep.Outputs) != len(tc.kinds) {
			t.Fatalf("%s: report names %+v, want kinds %v", tc.name, rep.Outputs, tc.kinds)
		}
		for i, k := range tc.kinds {
			if rep.Outputs[i].Kind != k {
				t.Errorf("%s: output %s is %s, want %s", tc.name, rep.Outputs[i].Name, rep.Outputs[i].Kind, k)
			}
		}
		final := rep.Final()
		last := rep.Stages[len(rep.Stages)-1]
		for _, s := range rep.Stages {
			t.Logf("%s: %-16s agreement %.3f divergence %.4f kept %v", tc.name, s.Name, s.Agreement.Top1, s.Agreement.KL, s.Kept)
		}
		t.Logf("%s: stages %d, last %s kept %v, agreement %.3f, divergence %.4f, accuracy %.3f", tc.name, len(rep.Stages), last.Name, last.Kept,
			final.Top1, final.KL, *final.Accuracy)
		// The fine-tuning follows the gradients of every output's loss: it must lower the
		// divergence the refit left (a stage is kept only when it improves the agreement).
		if last.Name != "fine-tune" || !last.Kept || len(final.Outputs) != len(tc.kinds) {
			t.Errorf("%s: last stage %s (kept %v) with %d outputs measured, want a fine-tuning that helped", tc.name, last.Name, last.Kept, len(final.Outputs))
		}
		if final.Top1 < 0.8 || final.Accuracy == nil {
			t.Errorf("%s: held-back agreement %.3f after the repair, want ≥ 0.8 and an accuracy", tc.name, final.Top1)
		}
	}
}

// labelledCalib is the first n of the bundled calibration images with their labels.
func labelledCalib(t *testing.T, n int) *dataset.Set {
	t.Helper()
	set, err := dataset.Load(filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz"),
		filepath.Join(testenv.ModelsDir(t), "data", "calib-labels-idx1-ubyte.gz"), dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: n})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// threeQuarterSlice cuts every prunable group of m to three quarters of its width (at least one
// channel), keeping the channels of largest L1 norm: the student the repair tests start from.
func threeQuarterSlice(t *testing.T, m *onnx.Model) (*rewrite.Analysis, rewrite.Keep, *onnx.Model) {
	t.Helper()
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	w := Widths{}
	for _, g := range a.Prunable() {
		w[g.ID] = max(1, g.Channels*3/4)
	}
	keep := KeepWidths(a, L1Importance(a), w)
	student, err := a.Slice(keep)
	if err != nil {
		t.Fatal(err)
	}
	return a, keep, student
}

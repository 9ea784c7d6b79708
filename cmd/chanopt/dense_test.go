package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/ort"
)

// engineOutputs runs a model over set in chanopt's engine, its outputs classified by its graph.
func engineOutputs(t *testing.T, path string, set *dataset.Set) *optimizer.Outputs {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := engine.Compile(m, engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out, err := optimizer.RunOutputs(p, m, set, 250, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ortOutputs is engineOutputs in ONNX Runtime: the same kinds, the values ONNX Runtime computes.
func ortOutputs(t *testing.T, path string, set *dataset.Set, kinds []optimizer.Output) *optimizer.Outputs {
	t.Helper()
	s, err := ort.Open(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := &optimizer.Outputs{Kinds: kinds, N: set.N, Data: make([][]float32, len(kinds)), Dims: make([][]int, len(kinds))}
	const batch = 250
	per := set.C * set.H * set.W
	for i := 0; i*batch < set.N; i++ {
		x := set.Batch(i, batch)
		ys, err := s.Run([]ort.Tensor{{Shape: []int64{int64(len(x) / per), int64(set.C), int64(set.H), int64(set.W)}, Data: x}})
		if err != nil {
			t.Fatal(err)
		}
		for j, y := range ys {
			out.Data[j] = append(out.Data[j], y.Data...)
			if i == 0 {
				for _, d := range y.Shape[1:] {
					out.Dims[j] = append(out.Dims[j], int(d))
				}
			}
		}
	}
	return out
}

// TestShrinkDenseKeepsIoU runs `shrink --macs 0.5 --data` on the bundled U-Net (a Sigmoid mask
// head) with the 2,000 bundled calibration images, and checks the slim model's masks against the
// original's on the 1,000 bundled test images, which the shrink never saw: IoU of the masks
// thresholded at 0.5 at least 0.9 in chanopt's engine and in ONNX Runtime, and the model passes
// onnx.checker. The report must name the output's kind and give its IoU.
func TestShrinkDenseKeepsIoU(t *testing.T) {
	shrinkDense(t, "unet", optimizer.Output{Name: "mask", Kind: optimizer.KindMap, Activation: "Sigmoid"}, 0.9)
}

// TestShrinkEmbeddingKeepsCosine is TestShrinkDenseKeepsIoU for the bundled embedding net: the
// slim model's embeddings keep a mean cosine similarity of at least 0.95 with the original's.
func TestShrinkEmbeddingKeepsCosine(t *testing.T) {
	shrinkDense(t, "embed", optimizer.Output{Name: "embedding", Kind: optimizer.KindEmbedding}, 0.95)
}

// shrinkDense shrinks models/dense/NAME.onnx to half its MACs with the bundled calibration
// images and checks that the report names its one output as want and that the output's agreement
// figure (Agreement.Figure: IoU, cosine) on the bundled test images is at least least, in the
// engine and in ONNX Runtime.
func shrinkDense(t *testing.T, name string, want optimizer.Output, least float64) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	src := filepath.Join(testenv.ModelsDir(t), "dense", name+".onnx")
	data := filepath.Join(testenv.ModelsDir(t), "data")
	dir := t.TempDir()
	out, rep := filepath.Join(dir, name+".slim.onnx"), filepath.Join(dir, "report.json")
	start := time.Now()
	// The uniform split and one epoch keep the test short; the annealer's fitness on maps is
	// tested in the optimizer package.
	code, _, stderr := runCLI("shrink", src, "--macs", "0.5", "--data", filepath.Join(data, "calib-images-idx3-ubyte.gz"),
		"--search", "uniform", "--epochs", "1", "--round-to", "1", "--allow-slower", "-o", out, "--report", rep, "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	elapsed := time.Since(start)
	var r shrinkReport
	b, _ := os.ReadFile(rep)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if d := r.Distill; d == nil || len(d.Outputs) != 1 || d.Outputs[0] != want {
		t.Fatalf("the report does not name the output %+v: %+v", want, r.Distill)
	}
	final := r.Distill.Final()
	if len(final.Outputs) != 1 || final.Outputs[0].Kind != want.Kind {
		t.Fatalf("the report's final agreement has no figures for the %s: %+v", want.Kind, final)
	}

	set, err := dataset.Load(filepath.Join(data, "eval-images-idx3-ubyte.gz"), "", dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		t.Fatal(err)
	}
	teacher := engineOutputs(t, src, set)
	for _, tc := range []struct {
		runtime          string
		teacher, student *optimizer.Outputs
	}{
		{"engine", teacher, engineOutputs(t, out, set)},
		{"ONNX Runtime", ortOutputs(t, src, set, teacher.Kinds), ortOutputs(t, out, set, teacher.Kinds)},
	} {
		ag, err := optimizer.CompareOutputs(tc.teacher, tc.student, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: held-out %s at %.3f of the MACs (report: %s on %d held-back calibration images), shrink %s",
			tc.runtime, outputFigures(ag.Outputs[0]), float64(r.After.MACs)/float64(r.Before.MACs), outputFigures(final.Outputs[0]),
			final.Images, elapsed.Round(time.Second))
		if f := ag.Figure(); f < least {
			t.Errorf("%s: the slim model's %s agrees with the original's at %.4f, want ≥ %g", tc.runtime, want.Name, f, least)
		}
	}
	testenv.CheckModels(t, out)
}

// TestEvalRefusesLabelsForMaps: labels make no sense for a model without a classifier output.
func TestEvalRefusesLabelsForMaps(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "dense", "unet.onnx")
	data := filepath.Join(testenv.ModelsDir(t), "data")
	code, _, stderr := runCLI("eval", src, "--data", filepath.Join(data, "eval-images-idx3-ubyte.gz"),
		"--labels", filepath.Join(data, "eval-labels-idx1-ubyte.gz"))
	if code != 1 || !strings.Contains(stderr, "unet.onnx") || !strings.Contains(stderr, "apply only to classifiers") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q; want 1 and a one-line refusal naming the model", code, stderr)
	}
}

// TestOutputKindFlag: --output-kind takes NAME=KIND with a known kind (a usage error otherwise)
// and a name the model has as an output (a one-line error naming the model otherwise).
func TestOutputKindFlag(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "dense", "embed.onnx")
	calib := filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz")
	out := filepath.Join(t.TempDir(), "out.onnx")
	for _, tc := range []struct {
		flag string
		code int
		want string
	}{
		{"embedding=bogus", 2, "want NAME=KIND"},
		{"embedding", 2, "want NAME=KIND"},
		{"emb=map", 2, `"emb", which is not an output`},
	} {
		code, _, stderr := runCLI("shrink", src, "--macs", "0.5", "--data", calib, "--samples", "300", "--output-kind", tc.flag, "-o", out, "-q")
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--output-kind %s: exit %d, stderr %q; want exit %d and one line with %q", tc.flag, code, stderr, tc.code, tc.want)
		}
	}
}

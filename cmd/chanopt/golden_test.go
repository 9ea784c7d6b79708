package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/internal/golden"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
)

// TestGroupsGolden keeps `chanopt groups --json` of every bundled model (classifiers and dense
// outputs) under testdata/groups.
func TestGroupsGolden(t *testing.T) {
	for _, p := range append(testenv.BundledModels(t), testenv.DenseModels(t)...) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		code, out, stderr := runCLI("groups", p, "--json")
		if code != 0 {
			t.Fatalf("%s: %s", name, stderr)
		}
		golden.Check(t, filepath.Join("testdata", "groups", name+".json"), []byte(out))
	}
}

// TestAnalyzeGolden keeps `chanopt analyze --json` of every bundled model under testdata/analyze.
func TestAnalyzeGolden(t *testing.T) {
	root := testenv.RepoRoot(t)
	for _, p := range testenv.BundledModels(t) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		code, out, stderr := runCLI("analyze", relPath(t, root, p), "--json")
		if code != 0 {
			t.Fatalf("%s: %s", name, stderr)
		}
		golden.Check(t, filepath.Join("testdata", "analyze", name+".json"), []byte(out))
	}
}

// relPath makes p relative to the current directory through the repository root.
func relPath(t *testing.T, root, p string) string {
	wd, _ := os.Getwd()
	r, err := filepath.Rel(wd, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLightCutKeepsAccuracy: a misaligned slice destroys a trained network; a correct one that
// removes 10% of the MACs by low importance keeps it within a few points once the mean shift is
// repaired (BN recalibration, or bias correction where torch folded BN), with no refit or training.
// Without that cheap repair these small nets lose far more (measured: resnet8 91.0% → 45%), which
// is why shrink repairs whenever it has data.
func TestLightCutKeepsAccuracy(t *testing.T) {
	evalImgs := filepath.Join(testenv.ModelsDir(t), "data", "eval-images-idx3-ubyte.gz")
	evalLabels := filepath.Join(testenv.ModelsDir(t), "data", "eval-labels-idx1-ubyte.gz")
	set, err := dataset.Load(evalImgs, evalLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		t.Fatal(err)
	}
	accuracy := func(m *onnx.Model) float64 { return engineAccuracy(t, m, set) }
	checked := 0
	defer func() {
		if checked < 2 {
			t.Errorf("only %d bundled models keep BN", checked)
		}
	}()
	for _, p := range testenv.BundledModels(t) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		m, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := rewrite.Groups(m)
		if err != nil {
			t.Fatal(err)
		}
		shapes, _ := onnx.BatchOne(m.Graph, nil)
		res, err := optimizer.ShrinkUniform(a, optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.9}, shapes, 1)
		if err != nil {
			t.Fatal(err)
		}
		calib, err := dataset.Load(filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz"), "",
			dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: 500})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := optimizer.RecalibrateBN(res.Model, calib, 100, 0); err != nil {
			t.Fatal(err)
		} else if n == 0 {
			corr, err := a.Correspond(res.Keep)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := optimizer.CorrectBias(m, res.Model, corr, calib, 100, 0); err != nil {
				t.Fatal(err)
			}
		}
		before, after := accuracy(m), accuracy(res.Model)
		t.Logf("%s: --macs 0.9, cheap repair: accuracy %.1f%% → %.1f%% on 1000 test images (MACs %.3f)", name, 100*before, 100*after,
			float64(res.Costs.MACs)/float64(mustMACs(t, m, shapes)))
		// BN recalibration restores the kept channels' statistics exactly; bias correction on
		// BN-folded models only restores means, so only BN-kept models are held to the bound.
		if math.IsNaN(after) || (optimizer.HasBatchNorm(m) && before-after > 0.05) {
			t.Errorf("%s: accuracy fell from %.1f%% to %.1f%%", name, 100*before, 100*after)
		}
		if optimizer.HasBatchNorm(m) {
			checked++
		}
	}
}

func mustMACs(t *testing.T, m *onnx.Model, shapes map[string]onnx.Shape) int64 {
	c, err := optimizer.Measure(m, shapes)
	if err != nil {
		t.Fatal(err)
	}
	return c.MACs
}

// TestShrinkReportGolden keeps the `shrink --report` of every bundled model (classifiers and
// dense outputs) at a fixed seed and budget (weight-only search, no repair) under testdata/shrink.
func TestShrinkReportGolden(t *testing.T) {
	dir := t.TempDir()
	for _, p := range append(testenv.BundledModels(t), testenv.DenseModels(t)...) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		rep := filepath.Join(dir, name+".json")
		code, _, stderr := runCLI("shrink", p, "--macs", "0.5", "--no-distill", "--seed", "7", "--iterations", "1000",
			"--round-to", "1", "--allow-slower", "-o", filepath.Join(dir, name+".slim.onnx"), "--report", rep, "-q")
		if code != 0 {
			t.Fatalf("%s: %s", name, stderr)
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		// Paths and timings differ between checkouts; the rest must not.
		b = withoutTimings(t, b)
		s := strings.ReplaceAll(string(b), dir, "OUT")
		s = strings.ReplaceAll(s, testenv.RepoRoot(t), "REPO")
		golden.Check(t, filepath.Join("testdata", "shrink", name+".json"), []byte(s))
	}
}

// withoutTimings is a shrink report with its wall-clock figures (stage timings, distillation and
// finalist seconds) zeroed, written as the CLI writes reports: what two runs with the same seed
// must agree on.
func withoutTimings(t *testing.T, b []byte) []byte {
	t.Helper()
	var r shrinkReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Timings) == 0 {
		t.Error("the report has no stage timings")
	}
	r.Timings = nil
	if d := r.Distill; d != nil {
		d.Seconds = 0
		for i := range d.Stages {
			d.Stages[i].Seconds = 0
		}
	}
	if s := r.SearchStats; s != nil && s.Finalists != nil {
		s.Finalists.Seconds = 0
	}
	// Latency is measured: the runtime's proof, the costs' latency and a latency search's figures.
	r.Runtime = nil
	r.Before.LatencyMS, r.After.LatencyMS = 0, 0
	if l := r.LatencySearch; l != nil {
		l.BeforeMS, l.AfterMS, l.Ratio, l.Attempts = 0, 0, 0, 0
	}
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

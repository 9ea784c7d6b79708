package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// TestSymbolicSizeFromData: a model with a symbolic N×3×H×W input takes its shape from --data, so
// shrink, eval and analyze need no --input-shape: the images' own size (a folder's first image),
// --image-size to resize them, and --input-shape still overrides. The MACs in the report are
// those at the size the images fixed.
func TestSymbolicSizeFromData(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "sym.onnx")
	rgbNet(t, model, onnx.Dim{Size: -1, Param: "H"}, onnx.Dim{Size: -1, Param: "W"})
	photos := filepath.Join(dir, "photos")
	photos64(t, photos, 24)
	// The MACs of the same net with the size fixed in the file.
	macsAt := func(side int64) int64 {
		p := filepath.Join(dir, fmt.Sprintf("fixed%d.onnx", side))
		rgbNet(t, p, onnx.D(side), onnx.D(side))
		m, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		shapes, err := onnx.BatchOne(m.Graph, nil)
		if err != nil {
			t.Fatal(err)
		}
		return mustMACs(t, m, shapes)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		macs  int64  // in the report; 0: no check
		inErr string // in stderr
	}{
		{"shrink, the images' size", []string{"shrink", model, "--data", photos}, 0, macsAt(64), "the images' own size, 64×64"},
		{"shrink, --image-size", []string{"shrink", model, "--data", photos, "--image-size", "32x32"}, 0, macsAt(32), "resized to 32×32"},
		{"shrink, --input-shape fixes the size", []string{"shrink", model, "--data", photos, "--input-shape", "1,3,48,48"}, 0, macsAt(48), ""},
		{"shrink, no data", []string{"shrink", model}, 1, 0, "--input-shape"},
		{"bad --image-size", []string{"shrink", model, "--data", photos, "--image-size", "32"}, 2, 0, "want HxW"},
		{"--image-size against a fixed size", []string{"shrink", model, "--data", photos, "--image-size", "32x32", "--input-shape", "1,3,48,48"}, 2, 0, "fixed at"},
		{"eval", []string{"eval", model, "--data", photos, "--teacher", model}, 0, 0, "64×64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			report := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if args[0] == "shrink" {
				args = append(args, "--macs", "0.7", "--search", "uniform", "--no-distill", "--runtime", "engine", "--allow-slower",
					"-o", filepath.Join(dir, "slim.onnx"), "--report", report)
			}
			code, _, stderr := runCLI(args...)
			if code != tc.code || !strings.Contains(stderr, tc.inErr) {
				t.Fatalf("exit %d, want %d; stderr %q should contain %q", code, tc.code, stderr, tc.inErr)
			}
			if tc.macs > 0 {
				if got := readShrinkReport(t, report).Before.MACs; got != tc.macs {
					t.Errorf("MACs before %d, want %d (the size the images fixed)", got, tc.macs)
				}
				slim, err := onnx.Load(filepath.Join(dir, "slim.onnx"))
				if err != nil {
					t.Fatal(err)
				}
				if s := slim.Graph.Values[slim.Graph.Inputs[0]].Shape; len(s) != 4 || s[2].Known() || s[3].Known() {
					t.Errorf("slim model's input %v: want H and W left symbolic, as in the original", s)
				}
			}
		})
	}
}

// TestSymbolicAnalyzeMACs: analyze with --data gives per-layer MACs at the images' size for a
// model with symbolic H and W (without data it has none to give).
func TestSymbolicAnalyzeMACs(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "sym.onnx")
	rgbNet(t, model, onnx.Dim{Size: -1, Param: "H"}, onnx.Dim{Size: -1, Param: "W"})
	photos := filepath.Join(dir, "photos")
	photos64(t, photos, 20)
	code, stdout, stderr := runCLI("analyze", model, "--data", photos, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep analyzeReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, l := range rep.Layers {
		total += l.MACs
	}
	if len(rep.Layers) == 0 || total == 0 {
		t.Errorf("%d layers, %d MACs in all: want the MACs at the images' size", len(rep.Layers), total)
	}
}

// TestShrinkNoFlags: `chanopt shrink MODEL` with no other flag writes MODEL.slim.onnx and a
// report beside it, keeps optimizer.DataFreeCut of the MACs at most, and says that accuracy was
// not checked and how to check it.
func TestShrinkNoFlags(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	model := write(t, dir, "resnet8.onnx", src)
	code, stdout, stderr := runCLI("shrink", model)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out := stdout + stderr
	for _, want := range []string{"Accuracy was not checked", "--data", "wrote " + filepath.Join(dir, "resnet8.slim.onnx")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rep := readShrinkReport(t, filepath.Join(dir, "resnet8.slim.report.json"))
	if rep.Target == nil || rep.Target.Checked || rep.Target.Ratio != optimizer.DataFreeCut {
		t.Fatalf("report target %+v: want the unchecked data-free cut %g", rep.Target, optimizer.DataFreeCut)
	}
	if ratio := float64(rep.After.MACs) / float64(rep.Before.MACs); ratio > optimizer.DataFreeCut || ratio >= 1 {
		t.Errorf("kept %.3f of the MACs: want a cut, at most %g", ratio, optimizer.DataFreeCut)
	}
	if _, err := onnx.Load(filepath.Join(dir, "resnet8.slim.onnx")); err != nil {
		t.Error(err)
	}
}

// fashionFolder writes the first n images of the bundled calibration set as PNGs into dir.
func fashionFolder(t *testing.T, dir string, n int) {
	t.Helper()
	set, err := dataset.Load(filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz"), "",
		dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: n})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	px := make([]float32, 28*28)
	for k := 0; k < set.N; k++ {
		set.Image(k, px)
		for i, v := range px {
			img.Pix[i] = uint8(v*255 + 0.5)
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%04d.png", k)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// TestShrinkMaxDrop: with --data and no budget, shrink searches the MACs ratio and keeps the
// smallest trial whose held-back drop stays within --max-drop, listing every trial in the report
// and the output; with a budget that loses more than --max-drop it writes nothing and exits 1.
func TestShrinkMaxDrop(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	photos := filepath.Join(dir, "photos")
	fashionFolder(t, photos, 200)
	fast := []string{"--runtime", "engine", "--iterations", "20", "--epochs", "1", "--time", "30s"}
	const maxDrop = 5.0 // 20 held-back images: one disagreement is 5 points

	slim, report := filepath.Join(dir, "slim.onnx"), filepath.Join(dir, "slim.json")
	args := append([]string{"shrink", model, "--data", photos, "--max-drop", fmt.Sprint(maxDrop), "-o", slim, "--report", report}, fast...)
	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep := readShrinkReport(t, report)
	tg := rep.Target
	if tg == nil || !tg.Checked || len(tg.Trials) < 2 {
		t.Fatalf("report target %+v: want at least two trials, checked", tg)
	}
	var kept *optimizer.TargetTrial
	for i, tr := range tg.Trials {
		t.Logf("trial %d: ratio %.3g, MACs %.3f, %s %.2f%% of %.2f%%, drop %.2f, %.0fs %s", i+1, tr.Ratio, tr.MACsRatio, tg.Figure,
			tr.Figure, tr.Reference, tr.Drop, tr.Seconds, tr.Error)
		if tr.Error == "" && tr.Within != (tr.Drop <= maxDrop) {
			t.Errorf("trial %d: drop %.2f judged within=%v against %g", i+1, tr.Drop, tr.Within, maxDrop)
		}
		if tr.Within && (kept == nil || tr.Ratio < kept.Ratio) {
			kept = &tg.Trials[i]
		}
		if !strings.Contains(stdout+stderr, fmt.Sprintf("ratio %.3g", tr.Ratio)) {
			t.Errorf("trial at %.3g not printed", tr.Ratio)
		}
	}
	if kept == nil || tg.Ratio != kept.Ratio || kept.Drop > maxDrop {
		t.Fatalf("kept ratio %g: want the smallest trial within %g points (%+v)", tg.Ratio, maxDrop, kept)
	}
	if got := float64(rep.After.MACs) / float64(rep.Before.MACs); got != kept.MACsRatio {
		t.Errorf("written model keeps %.3f of the MACs, the kept trial %.3f", got, kept.MACsRatio)
	}

	// A budget that cannot be met within the drop: one line, exit 1, nothing written.
	strict := filepath.Join(dir, "strict.onnx")
	args = append([]string{"shrink", model, "--macs", "0.1", "--data", photos, "--max-drop", "0.01", "-o", strict}, fast...)
	code, _, stderr = runCLI(args...)
	if last := lastLine(stderr); code != 1 || !strings.HasPrefix(last, "chanopt: ") || !strings.Contains(last, "more than the 0.01 allowed") {
		t.Errorf("exit %d, stderr ends %q: want exit 1 and a line saying the drop is more than allowed", code, lastLine(stderr))
	}
	if _, err := os.Stat(strict); !os.IsNotExist(err) {
		t.Errorf("%s written although the budget lost more than --max-drop (%v)", strict, err)
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/onnx"
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

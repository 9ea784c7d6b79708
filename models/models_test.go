// Package models_test checks the bundled models against what models/README.md says of them.
package models_test

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/ort"
)

func ortLogits(t *testing.T, s *ort.Session, set *dataset.Set) []float32 {
	t.Helper()
	var out []float32
	const batch = 500
	for i := 0; i*batch < set.N; i++ {
		x := set.Batch(i, batch)
		r, err := s.Run([]ort.Tensor{{Shape: []int64{int64(len(x) / 784), 1, 28, 28}, Data: x}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r[0].Data...)
	}
	return out
}

// readmeAccuracy reads the ONNX Runtime 10k accuracy column of the model table in
// models/README.md: the first table of the file (later sections have tables of their own).
func readmeAccuracy(t *testing.T) map[string]float64 {
	b, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|.*\\| ([0-9.]+)% \\|")
	out := map[string]float64{}
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "|") {
			inTable = true
		} else if inTable {
			break // the end of the first table
		}
		if m := row.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = v / 100
		}
	}
	return out
}

// TestBundledModels: each bundled model runs in ONNX Runtime, reproduces its stored PyTorch logits
// to 1e-4, reaches 88% on the 1k bundled test subset, and reaches exactly the 10k accuracy the
// README states when Debian's Fashion-MNIST is installed.
func TestBundledModels(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	dir := filepath.Join(testenv.ModelsDir(t), "data")
	eval16, err := npy.ReadFile(filepath.Join(dir, "eval16.npy"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := dataset.Load(filepath.Join(dir, "eval-images-idx3-ubyte.gz"), filepath.Join(dir, "eval-labels-idx1-ubyte.gz"),
		dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		t.Fatal(err)
	}
	var full *dataset.Set
	const t10k = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
	if _, err := os.Stat(t10k); err == nil {
		if full, err = dataset.Load(t10k, strings.Replace(t10k, "images-idx3", "labels-idx1", 1), dataset.Options{Channels: 1, Height: 28, Width: 28}); err != nil {
			t.Fatal(err)
		}
	} else {
		testenv.Missing(t, "%s is missing (apt-get install dataset-fashion-mnist)", t10k)
	}
	stated := readmeAccuracy(t)
	models := testenv.BundledModels(t)
	if len(models) < 6 {
		t.Errorf("%d bundled models, want 6", len(models))
	}
	for _, p := range models {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		s, err := ort.Open(p, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := npy.ReadFile(filepath.Join(dir, name+".logits16.npy"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Run([]ort.Tensor{{Shape: []int64{16, 1, 28, 28}, Data: eval16.Float32}})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, v := range ref.Float32 {
			worst = math.Max(worst, math.Abs(float64(v-got[0].Data[i]))/math.Max(1, math.Abs(float64(v))))
		}
		if worst > 1e-4 {
			t.Errorf("%s: ONNX Runtime logits differ from PyTorch's by %.3g", name, worst)
		}
		acc := *optimizer.Compare(ortLogits(t, s, sub), ortLogits(t, s, sub), 10, sub.Labels).Accuracy
		t.Logf("%s: logits within %.2g of PyTorch; accuracy %.1f%% on the 1k subset", name, worst, 100*acc)
		if acc < 0.88 {
			t.Errorf("%s: %.1f%% on the 1k test subset, want at least 88%%", name, 100*acc)
		}
		if full != nil {
			l := ortLogits(t, s, full)
			acc10k := *optimizer.Compare(l, l, 10, full.Labels).Accuracy
			want, ok := stated[name]
			if !ok {
				t.Errorf("%s: models/README.md states no accuracy", name)
			} else if math.Abs(acc10k-want) > 0.00005 {
				t.Errorf("%s: ONNX Runtime measures %.2f%% on the 10k test set, README says %.2f%%", name, 100*acc10k, 100*want)
			}
		}
		s.Close()
	}
}

// TestModelTable: the model table of models/README.md describes the committed files: one row per
// bundled model and one model per row, with the params, MACs (batch 1) and file size chanopt
// measures, and every file under the 2 MB limit. Pure Go: it runs on any machine.
func TestModelTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|.*\\| ([0-9,]+) \\| ([0-9,]+) \\| [0-9.]+% \\|.*\\| ([0-9,]+) B \\|$")
	num := func(s string) int64 {
		v, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		return v
	}
	rows := map[string][3]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			rows[m[1]] = [3]int64{num(m[2]), num(m[3]), num(m[4])}
		}
	}
	models := testenv.BundledModels(t)
	if len(rows) != len(models) {
		t.Errorf("the table has %d rows, models/ has %d models", len(rows), len(models))
	}
	for _, p := range models {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		want, ok := rows[name]
		if !ok {
			t.Errorf("%s: no row in models/README.md", name)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		shapes, err := onnx.BatchOne(m.Graph, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := onnx.CostAt(m, shapes)
		if err != nil {
			t.Fatal(err)
		}
		if got := [3]int64{c.Params, c.MACs, info.Size()}; got != want {
			t.Errorf("%s: params, MACs and bytes are %v, the table says %v", name, got, want)
		}
		if info.Size() >= 2<<20 {
			t.Errorf("%s: %d bytes, over the 2 MB limit for committed files", name, info.Size())
		}
	}
}

// TestDenseModels: each model under dense/ runs in ONNX Runtime and reproduces its stored PyTorch
// outputs on eval16.npy to 1e-4; the U-Net's masks match the foreground masks it was trained on
// (pixel/255 > 0.25, as models/train/train_dense.py says) with IoU ≥ 0.99 on the 1k test subset,
// and the embeddings have unit length.
func TestDenseModels(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	dir := filepath.Join(testenv.ModelsDir(t), "data")
	eval16, err := npy.ReadFile(filepath.Join(dir, "eval16.npy"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := dataset.Load(filepath.Join(dir, "eval-images-idx3-ubyte.gz"), "", dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range testenv.DenseModels(t) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		s, err := ort.Open(p, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ref, err := npy.ReadFile(strings.TrimSuffix(p, ".onnx") + ".out16.npy")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Run([]ort.Tensor{{Shape: []int64{16, 1, 28, 28}, Data: eval16.Float32}})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, v := range ref.Float32 {
			worst = math.Max(worst, math.Abs(float64(v-got[0].Data[i])))
		}
		if len(ref.Float32) != len(got[0].Data) || worst > 1e-4 {
			t.Errorf("%s: ONNX Runtime's outputs differ from PyTorch's by %.3g (%d and %d values)", name, worst, len(got[0].Data), len(ref.Float32))
		}
		out := ortLogits(t, s, sub)
		switch name {
		case "unet":
			var inter, union int
			x := sub.Floats()
			for i, v := range out {
				a, b := v > 0.5, x[i] > 0.25
				if a && b {
					inter++
				}
				if a || b {
					union++
				}
			}
			iou := float64(inter) / float64(union)
			t.Logf("%s: outputs within %.2g of PyTorch; mask IoU %.4f on the 1k subset", name, worst, iou)
			if iou < 0.99 {
				t.Errorf("%s: mask IoU %.4f on the 1k test subset, want ≥ 0.99", name, iou)
			}
		case "embed":
			d := len(out) / sub.N
			for i := 0; i < sub.N; i++ {
				var n float64
				for _, v := range out[i*d : (i+1)*d] {
					n += float64(v) * float64(v)
				}
				if math.Abs(n-1) > 1e-3 {
					t.Fatalf("%s: embedding %d has squared length %.4f, want 1", name, i, n)
				}
			}
			t.Logf("%s: outputs within %.2g of PyTorch; unit-length embeddings", name, worst)
		}
	}
}

// TestLargeModels: the real-size models under models/large/ (not among the bundled 28×28 models,
// which the globs over models/*.onnx pick up) match their rows in models/README.md's real-size
// table (params, MACs at batch 1, bytes), take a 3×112×112 input, stay under the 2 MB limit, and,
// when ONNX Runtime is available, reproduce PyTorch's logits on large/input.npy to 1e-4.
func TestLargeModels(t *testing.T) {
	dir := filepath.Join(testenv.ModelsDir(t), "large")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if len(paths) == 0 {
		t.Fatalf("no models under %s", dir)
	}
	b, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// model | structure | params | MACs | file | accuracy | train time
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|.*\\| ([0-9,]+) \\| ([0-9,]+) \\| ([0-9,]+) B \\| [0-9.]+% \\|")
	num := func(s string) int64 {
		v, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		return v
	}
	rows := map[string][3]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			rows[m[1]] = [3]int64{num(m[2]), num(m[3]), num(m[4])}
		}
	}
	if len(rows) != len(paths) {
		t.Errorf("the real-size table has %d rows, models/large has %d models", len(rows), len(paths))
	}
	input, err := npy.ReadFile(filepath.Join(dir, "input.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ortMissing := ort.Available()
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() >= 2<<20 {
			t.Errorf("%s: %d bytes, over the 2 MB limit for committed files", name, info.Size())
		}
		m, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		shapes, err := onnx.BatchOne(m.Graph, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := shapes[m.Graph.Inputs[0]].String(); got != "[1x3x112x112]" {
			t.Errorf("%s: input %s at batch 1, want [1x3x112x112]", name, got)
		}
		c, err := onnx.CostAt(m, shapes)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := [3]int64{c.Params, c.MACs, info.Size()}, rows[name]; got != want {
			t.Errorf("%s: params, MACs and bytes are %v, the real-size table says %v", name, got, want)
		}
		if ortMissing != nil {
			continue
		}
		ref, err := npy.ReadFile(filepath.Join(dir, name+".logits.npy"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ort.Open(p, 2)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Run([]ort.Tensor{{Shape: []int64{1, 3, 112, 112}, Data: input.Float32}})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, v := range ref.Float32 {
			worst = math.Max(worst, math.Abs(float64(v-got[0].Data[i]))/math.Max(1, math.Abs(float64(v))))
		}
		if len(got[0].Data) != len(ref.Float32) || worst > 1e-4 {
			t.Errorf("%s: ONNX Runtime gives %d logits within %.3g of PyTorch's %d, want equal counts within 1e-4",
				name, len(got[0].Data), worst, len(ref.Float32))
		}
	}
	if ortMissing != nil {
		testenv.Missing(t, "%v", ortMissing)
	}
}

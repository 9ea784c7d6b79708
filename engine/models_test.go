package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
)

// extraModels lists model files named by $CHANOPT_ENGINE_MODELS (globs separated by ':'),
// compared with ONNX Runtime like the bundled ones.
func extraModels() []string {
	var out []string
	for _, pat := range filepath.SplitList(os.Getenv("CHANOPT_ENGINE_MODELS")) {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}

// modelsUnderTest is the bundled models plus $CHANOPT_ENGINE_MODELS; without either it fails.
func modelsUnderTest(t testing.TB) []string {
	bundled, _ := filepath.Glob(filepath.Join(testenv.ModelsDir(t), "*.onnx"))
	extra := extraModels()
	if len(bundled) == 0 && len(extra) == 0 {
		return testenv.BundledModels(t)
	}
	return append(bundled, extra...)
}

// inputShape gives a model input's shape with the batch (and any other free dim) set to batch.
func inputShape(m *onnx.Model, name string, batch int) ([]int, error) {
	v := m.Graph.Values[name]
	if v == nil || v.Shape == nil {
		return nil, fmt.Errorf("input %s has no declared shape", name)
	}
	shape := make([]int, len(v.Shape))
	for i, d := range v.Shape {
		switch {
		case d.Known() && !(i == 0 && d.Size == 1 && batch != 1):
			shape[i] = int(d.Size)
		case i == 0:
			shape[i] = batch
		default:
			return nil, fmt.Errorf("input %s has a free dim %d", name, i)
		}
	}
	return shape, nil
}

func randomInput(rng *rand.Rand, shape []int) *Tensor {
	t := Zeros(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// relErr is max|got − want| / max(max|want|, 1e-6).
func relErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-6)
}

func loadProgram(t testing.TB, path string, opt Options) (*onnx.Model, *Program) {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return m, p
}

// TestModelsMatchORT runs every bundled model (and $CHANOPT_ENGINE_MODELS) on random inputs at
// batch 1 and 8 and compares all outputs with ONNX Runtime to 1e-4 relative.
func TestModelsMatchORT(t *testing.T) {
	paths := modelsUnderTest(t)
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			m, p := loadProgram(t, path, Options{})
			s, err := ort.Open(path, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewSource(1))
			for _, batch := range []int{1, 8} {
				var ins []*Tensor
				var oins []ort.Tensor
				for _, in := range p.Inputs() {
					shape, err := inputShape(m, in, batch)
					if err != nil {
						t.Fatalf("%v: the test cannot pick an input shape for this model", err)
					}
					x := randomInput(rng, shape)
					ins = append(ins, x)
					oshape := make([]int64, len(shape))
					for i, d := range shape {
						oshape[i] = int64(d)
					}
					oins = append(oins, ort.Tensor{Shape: oshape, Data: x.Data})
				}
				got, err := p.RunSlice(ins...)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.Run(oins)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if len(got[i].Data) != len(want[i].Data) {
						t.Fatalf("batch %d output %d: %d values, ORT %d", batch, i, len(got[i].Data), len(want[i].Data))
					}
					e := relErr(got[i].Data, want[i].Data)
					t.Logf("batch %d output %s: max relative error %.2g", batch, p.Outputs()[i], e)
					if e > 1e-4 {
						t.Errorf("batch %d output %s: relative error %.3g vs ONNX Runtime", batch, p.Outputs()[i], e)
					}
				}
			}
		})
	}
}

// TestBundledLogits checks each bundled model reproduces the logits its training script stored
// (models/data/<name>.logits16.npy on models/data/eval16.npy).
func TestBundledLogits(t *testing.T) {
	dir := filepath.Join(testenv.ModelsDir(t), "data")
	x, err := npy.ReadFile(filepath.Join(dir, "eval16.npy"))
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the bundled %s is missing (make models writes it)", filepath.Join(dir, "eval16.npy"))
	}
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, path := range testenv.BundledModels(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		want, err := npy.ReadFile(filepath.Join(dir, name+".logits16.npy"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ran++
		t.Run(name, func(t *testing.T) {
			_, p := loadProgram(t, path, Options{})
			out, err := p.RunSlice(&Tensor{Shape: x.Shape, Data: x.Float32})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out[0].Shape, want.Shape) {
				t.Fatalf("logits shape %v, want %v", out[0].Shape, want.Shape)
			}
			e := relErr(out[0].Data, want.Float32)
			t.Logf("max relative error %.2g", e)
			if e > 1e-4 {
				t.Errorf("logits differ from the stored ones: relative error %.3g", e)
			}
		})
	}
	if ran == 0 {
		t.Fatalf("no bundled model has stored logits in %s (make models writes them)", dir)
	}
}

package interop

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/ort"
	"github.com/chanopt/chanopt/rewrite"
)

// TestSlimModelsReadByOnnxGo slices models of the ResNet and VGG families to half their MACs and
// runs the slim files in onnx-go's gorgonia backend, an ONNX reader and executor that shares no code
// with chanopt: its logits must equal chanopt's engine's (pure Go, so this runs on any machine) and,
// where it is installed, ONNX Runtime's.
func TestSlimModelsReadByOnnxGo(t *testing.T) {
	ortErr := ort.Available()
	if ortErr != nil {
		if testenv.RequireAll() {
			testenv.Missing(t, "%v", ortErr)
		}
		t.Logf("%v: onnx-go is compared with chanopt's engine only", ortErr)
	}
	var paths []string
	for _, p := range testenv.BundledModelsIfAny(t) {
		if b := filepath.Base(p); strings.HasPrefix(b, "resnet8") || strings.HasPrefix(b, "vgg") {
			paths = append(paths, p)
		}
	}
	// The zoo's resnet18 joins where `make zoo` has made it (always in CI).
	var zoo []string
	if found, _ := filepath.Glob(filepath.Join(testenv.ZooDir(), "resnet18*.onnx")); len(found) > 0 || testenv.RequireAll() {
		zoo = testenv.ZooModels(t)
	}
	for _, p := range zoo {
		if b := filepath.Base(p); b == "resnet18.onnx" || b == "resnet18_bn.onnx" {
			paths = append(paths, p)
		}
	}
	dir := t.TempDir()
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		t.Run(name, func(t *testing.T) {
			m, err := onnx.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			shapes, err := onnx.BatchOne(m.Graph, nil)
			if err != nil {
				t.Fatal(err)
			}
			a, err := rewrite.Groups(m)
			if err != nil {
				t.Fatal(err)
			}
			res, err := optimizer.ShrinkUniform(a, optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}, shapes, 1)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, name+".slim.onnx")
			if err := onnx.Save(out, res.Model, onnx.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			in := shapes[m.Graph.Inputs[0]]
			dims := make([]int, len(in))
			for i, d := range in {
				dims[i] = int(d.Size)
			}
			x := make([]float32, in.NumElements())
			rng := rand.New(rand.NewPCG(5, 6))
			for i := range x {
				x[i] = float32(rng.Float64())
			}
			got, gotShape, err := RunGorgonia(out, dims, x)
			if err != nil {
				t.Fatalf("onnx-go cannot run the slim model: %v", err)
			}
			compare := func(ref string, want []float32) {
				if len(got) != len(want) {
					t.Fatalf("onnx-go gives %v (%d values), %s %d", gotShape, len(got), ref, len(want))
				}
				scale, diff := 0.0, 0.0
				for i, w := range want {
					scale = math.Max(scale, math.Abs(float64(w)))
					diff = math.Max(diff, math.Abs(float64(w-got[i])))
				}
				t.Logf("max |onnx-go - %s| = %.3g of max |logit| %.3g", ref, diff, scale)
				if diff > 1e-4*math.Max(scale, 1) {
					t.Errorf("onnx-go and %s differ by %.3g", ref, diff)
				}
			}
			p, err := engine.Compile(res.Model, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ys, err := p.RunSlice(engine.NewTensor(dims, x))
			p.Close()
			if err != nil {
				t.Fatal(err)
			}
			compare("chanopt's engine", ys[0].Data)
			if ortErr == nil {
				want, err := ort.Run(out, []ort.Tensor{{Shape: in.Sizes(), Data: x}})
				if err != nil {
					t.Fatal(err)
				}
				compare("ONNX Runtime", want[0].Data)
			}
		})
	}
}

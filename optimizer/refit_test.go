package optimizer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// TestRefitRecoversConv: a student whose Conv weights were scrambled is refit on the teacher's
// outputs of that Conv; with noise-free targets the least squares give back the teacher's weights,
// which they only do when the refit places every window where the Conv does (stride, dilation and
// the pads of each auto_pad).
func TestRefitRecoversConv(t *testing.T) {
	cases := []struct {
		name  string
		attrs map[string]*onnx.Attr
	}{
		{"NOTSET pads 1", map[string]*onnx.Attr{"pads": ints(1, 1, 1, 1)}},
		{"NOTSET asymmetric pads, stride 2", map[string]*onnx.Attr{"pads": ints(2, 0, 0, 1), "strides": ints(2, 2)}},
		{"VALID dilation 2", map[string]*onnx.Attr{"auto_pad": {Kind: onnx.AttrString, S: "VALID"}, "dilations": ints(2, 2)}},
		{"SAME_UPPER stride 2", map[string]*onnx.Attr{"auto_pad": {Kind: onnx.AttrString, S: "SAME_UPPER"}, "strides": ints(2, 2)}},
		{"SAME_LOWER", map[string]*onnx.Attr{"auto_pad": {Kind: onnx.AttrString, S: "SAME_LOWER"}}},
		{"SAME_LOWER stride 2", map[string]*onnx.Attr{"auto_pad": {Kind: onnx.AttrString, S: "SAME_LOWER"}, "strides": ints(2, 2)}},
	}
	const cin, cout, k, hw = 2, 3, 3, 8
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			model := func(w []float32) *onnx.Model {
				g := &onnx.Graph{Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}}
				g.Inputs = []string{"x"}
				g.Values["x"] = &onnx.Value{Name: "x", Type: onnx.Float, Shape: onnx.Shape{{Size: -1, Param: "N"}, onnx.D(cin), onnx.D(hw), onnx.D(hw)}}
				for _, t := range []*onnx.Tensor{onnx.NewFloatTensor("w", []int64{cout, cin, k, k}, w),
					onnx.NewFloatTensor("b", []int64{cout}, []float32{0.5, -0.25, 0})} {
					g.Inits[t.Name] = t
					g.InitOrder = append(g.InitOrder, t.Name)
					g.Values[t.Name] = &onnx.Value{Name: t.Name, Type: onnx.Float, Shape: onnx.ShapeOf(t.Dims...)}
				}
				g.Nodes = []*onnx.Node{{Name: "y", OpType: "Conv", Inputs: []string{"x", "w", "b"}, Outputs: []string{"y"}, Attrs: tc.attrs}}
				g.Outputs = []string{"y"}
				g.Values["y"] = &onnx.Value{Name: "y", Type: onnx.Float}
				return &onnx.Model{Graph: g, Opsets: map[string]int64{"": 13}}
			}
			want := make([]float32, cout*cin*k*k)
			for j := range want {
				want[j] = float32(rng.NormFloat64())
			}
			scrambled := make([]float32, len(want))
			for j := range scrambled {
				scrambled[j] = float32(rng.NormFloat64())
			}
			teacher, student := model(want), model(scrambled)
			pixels := make([]float32, 64*cin*hw*hw)
			for j := range pixels {
				pixels[j] = float32(rng.NormFloat64())
			}
			set := dataset.NewSet(64, cin, hw, hw, pixels)
			corr := map[string]rewrite.Correspondence{"y": {In: []int{0, 1}}}
			n, err := Refit(teacher, student, corr, set, RefitOptions{Ridge: 1e-9, Rows: 40, Threads: 1})
			if err != nil || n != 1 {
				t.Fatalf("Refit: %d layers, %v", n, err)
			}
			got := student.Graph.Inits["w"].Floats
			worst := 0.0
			for j := range want {
				worst = math.Max(worst, math.Abs(float64(got[j]-want[j])))
			}
			if worst > 1e-3 {
				t.Errorf("refit weights differ from the teacher's by up to %.3g", worst)
			}
		})
	}
}

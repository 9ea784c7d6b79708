package optimizer

import (
	"math"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
)

// chainGraph builds a graph x → ops[0] → ops[1] → … → y, each op one node; an op written
// "Add+bias" is an Add of the previous value and a constant.
func chainGraph(ops ...string) *onnx.Graph {
	g := &onnx.Graph{Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}, Inputs: []string{"x"}}
	prev := "x"
	for i, op := range ops {
		out := "v" + string(rune('a'+i))
		if i == len(ops)-1 {
			out = "y"
		}
		in := []string{prev}
		if op == "Add+bias" {
			op = "Add"
			g.Inits["bias"] = &onnx.Tensor{Name: "bias", Type: onnx.Float, Dims: []int64{10}, Floats: make([]float32, 10)}
			in = append(in, "bias")
		}
		g.Nodes = append(g.Nodes, &onnx.Node{Name: out, OpType: op, Inputs: in, Outputs: []string{out}})
		prev = out
	}
	g.Outputs = []string{"y"}
	return g
}

func TestClassifyOutput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ops   []string
		rank  int
		float bool
		kind  OutputKind
		act   string
	}{
		{"gemm classifier", []string{"Conv", "GlobalAveragePool", "Flatten", "Gemm"}, 2, true, KindLogits, ""},
		{"matmul and bias", []string{"Flatten", "MatMul", "Add+bias"}, 2, true, KindLogits, ""},
		{"conv head averaged", []string{"Relu", "Conv", "GlobalAveragePool", "Flatten"}, 2, true, KindLogits, ""},
		{"softmax classifier", []string{"Gemm", "Softmax"}, 2, true, KindProbabilities, "Softmax"},
		{"log-softmax through reshape", []string{"Gemm", "LogSoftmax", "Reshape"}, 2, true, KindProbabilities, "LogSoftmax"},
		{"multi-label sigmoid", []string{"Gemm", "Sigmoid"}, 2, true, KindProbabilities, "Sigmoid"},
		{"segmentation probabilities", []string{"Conv", "Sigmoid"}, 4, true, KindMap, "Sigmoid"},
		{"segmentation logits", []string{"ConvTranspose", "Conv"}, 4, true, KindMap, ""},
		{"depth N×H×W", []string{"Conv", "Squeeze"}, 3, true, KindMap, ""},
		{"softmax over classes per pixel", []string{"Conv", "Softmax"}, 4, true, KindMap, "Softmax"},
		{"pooled features", []string{"Conv", "Relu", "GlobalAveragePool", "Flatten"}, 2, true, KindEmbedding, ""},
		{"L2-normalised features", []string{"Gemm", "Div"}, 2, true, KindEmbedding, ""},
		{"indices", []string{"Gemm", "ArgMax"}, 2, false, KindOther, ""},
	} {
		got := ClassifyOutput(chainGraph(tc.ops...), "y", tc.rank, tc.float)
		if got.Kind != tc.kind || got.Activation != tc.act {
			t.Errorf("%s: kind %s activation %q, want %s %q", tc.name, got.Kind, got.Activation, tc.kind, tc.act)
		}
	}
}

func TestClassifyOutputsOverride(t *testing.T) {
	m := &onnx.Model{Graph: chainGraph("Conv", "Relu", "GlobalAveragePool", "Flatten")}
	got, err := ClassifyOutputs(m, map[string]int{"y": 2}, map[string]bool{"y": true}, map[string]OutputKind{"y": KindLogits})
	if err != nil || len(got) != 1 || got[0].Kind != KindLogits {
		t.Errorf("override: %+v %v, want logits", got, err)
	}
	if _, err := ClassifyOutputs(m, nil, nil, map[string]OutputKind{"z": KindLogits}); err == nil || !strings.Contains(err.Error(), `"z"`) {
		t.Errorf("override of a name that is not an output: %v, want an error naming it", err)
	}
	for _, tc := range []struct {
		s  string
		ok bool
	}{{"logits", true}, {"map", true}, {"embedding", true}, {"probabilities", true}, {"other", false}, {"Logits", false}, {"", false}} {
		if _, err := ParseOutputKind(tc.s); (err == nil) != tc.ok {
			t.Errorf("ParseOutputKind(%q): %v, want ok %v", tc.s, err, tc.ok)
		}
	}
}

// TestCompareOutputsFigures checks each kind's figures on outputs whose answer is known.
func TestCompareOutputsFigures(t *testing.T) {
	teacher := &Outputs{N: 2,
		Kinds: []Output{{Name: "logits", Kind: KindLogits}, {Name: "mask", Kind: KindMap, Activation: "Sigmoid"}, {Name: "emb", Kind: KindEmbedding}},
		Dims:  [][]int{{3}, {1, 2, 2}, {2}},
		Data: [][]float32{
			{1, 0, 0, 0, 1, 0},
			{0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1},
			{1, 0, 0, 1},
		},
	}
	student := &Outputs{N: 2, Kinds: teacher.Kinds, Dims: teacher.Dims,
		Data: [][]float32{
			{1, 0, 0, 0, 0, 1}, // agrees on the first image only
			{0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1},
			{1, 0, 1, 1}, // cos 1 and 1/√2
		}}
	ag, err := CompareOutputs(teacher, student, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"logits": 0.5, "mask": 2.0 / 4, "emb": (1 + 1/math.Sqrt2) / 2}
	for _, o := range ag.Outputs {
		if got := o.Figure(); math.Abs(got-want[o.Name]) > 1e-6 {
			t.Errorf("%s (%s): figure %.6f, want %.6f", o.Name, o.Kind, got, want[o.Name])
		}
		if o.Divergence <= 0 {
			t.Errorf("%s: divergence %g for outputs that differ", o.Name, o.Divergence)
		}
	}
	// Only the classifier has an accuracy estimate: the teacher's softmax gives its own class
	// e/(e+2) and any other 1/(e+2); the student changes the second image's answer.
	top, other := math.E/(math.E+2), 1/(math.E+2)
	if e := ag.Outputs[0].Estimated; e == nil || math.Abs(e.Original-top) > 1e-6 || math.Abs(e.Drop-(top-other)/2) > 1e-6 {
		t.Errorf("logits estimate %+v, want the original at %.4f and a drop of %.4f", e, top, (top-other)/2)
	}
	if ag.Outputs[1].Estimated != nil || ag.Outputs[2].Estimated != nil {
		t.Error("a map or an embedding has an accuracy estimate")
	}
	if mae := *ag.Outputs[1].MAE; math.Abs(mae-0.2) > 1e-6 {
		t.Errorf("mask MAE %.6f, want 0.2", mae)
	}
	if ag.Top1 != 0.5 || ag.Accuracy == nil || *ag.Accuracy != 0.5 {
		t.Errorf("top-1 %g accuracy %v, want 0.5 and 0.5", ag.Top1, ag.Accuracy)
	}
	self, _ := CompareOutputs(teacher, teacher, nil)
	if self.Figure() != 1 || self.KL > 1e-6 {
		t.Errorf("teacher against itself: figure %g divergence %g, want 1 and 0", self.Figure(), self.KL)
	}
	noClass := &Outputs{N: 2, Kinds: teacher.Kinds[1:]}
	labelled := dataset.NewSet(2, 1, 1, 1, []float32{0, 1})
	labelled.Labels = []int{0, 1}
	if err := noClass.CheckLabels(labelled); err == nil || !strings.Contains(err.Error(), "only to classifiers") {
		t.Errorf("labels for a map model: %v, want a refusal", err)
	}
	labelled.Classes = []string{"a", "b"} // class folders: not refused
	if err := noClass.CheckLabels(labelled); err != nil {
		t.Errorf("folder labels for a map model: %v, want no refusal", err)
	}
}

package optimizer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chanopt/chanopt/onnx"
)

// OutputKind says what a model output holds, which decides how a student is distilled against
// it and how its agreement with the original is measured.
type OutputKind string

const (
	// KindLogits are unnormalised class scores, N×C: KL at a temperature, top-1 agreement.
	KindLogits OutputKind = "logits"
	// KindProbabilities are class probabilities, N×C, made by Softmax, LogSoftmax (log-probabilities)
	// or Sigmoid (independent labels): KL on the probabilities as they are, top-1 agreement.
	KindProbabilities OutputKind = "probabilities"
	// KindMap is a dense output, N×C×H×W, N×H×W or any rank other than 2 (segmentation,
	// detection heads, depth): per-element Bernoulli KL after a Sigmoid, MSE relative to the
	// original's variance otherwise; IoU of the thresholded map and mean absolute error.
	KindMap OutputKind = "map"
	// KindEmbedding is a feature vector per image, N×D, not produced by a classifier layer:
	// cosine distance, mean cosine similarity.
	KindEmbedding OutputKind = "embedding"
	// KindOther is an output that is not floating point (indices, counts): neither distilled nor
	// compared.
	KindOther OutputKind = "other"
)

// ParseOutputKind reads a kind a user names (logits, probabilities, map, embedding).
func ParseOutputKind(s string) (OutputKind, error) {
	switch k := OutputKind(s); k {
	case KindLogits, KindProbabilities, KindMap, KindEmbedding:
		return k, nil
	}
	return "", fmt.Errorf("output kind %q: want logits, probabilities, map or embedding", s)
}

// Output is one graph output and its kind.
type Output struct {
	Name string     `json:"name"`
	Kind OutputKind `json:"kind"`
	// Activation is the op that bounds the values, when there is one: "Softmax", "LogSoftmax" or
	// "Sigmoid" ("" for raw values). It picks the loss and a map's threshold.
	Activation string `json:"activation,omitempty"`
}

// Classifier reports whether the output scores classes (labels and top-1 agreement apply).
func (o Output) Classifier() bool { return o.Kind == KindLogits || o.Kind == KindProbabilities }

// passThrough are the ops that move values without changing what they mean, looked through when
// finding what produced an output.
var passThrough = map[string]bool{"Identity": true, "Reshape": true, "Flatten": true, "Squeeze": true,
	"Unsqueeze": true, "Transpose": true, "Dropout": true, "Cast": true}

// ClassifyOutput decides the kind of graph output name from the ops that produce it and its rank
// (the number of dims of the tensor a run gives, batch included), by these rules:
//
//   - not floating point: other;
//   - rank other than 2: a map, with the activation its producer applies (Sigmoid, Softmax,
//     LogSoftmax) if any;
//   - rank 2 (N×D) made by Softmax, LogSoftmax or Sigmoid: probabilities;
//   - rank 2 made by a classifier layer (Gemm, MatMul, a Conv, or a constant bias Add on one),
//     possibly through a global average: logits;
//   - any other rank 2 (a normalisation, a pooled feature map, an activation): an embedding.
//
// Ops that only move values (Reshape, Flatten, Squeeze, Transpose, Identity, ...) are looked
// through. A classifier whose last layer is followed by an activation before the average (as in
// SqueezeNet: Conv, Relu, pool) reads as an embedding by these rules; ClassifyOutputs' override
// names the kind outright.
func ClassifyOutput(g *onnx.Graph, name string, rank int, float bool) Output {
	out := Output{Name: name}
	if !float {
		out.Kind = KindOther
		return out
	}
	prod := g.Producers()
	p := prod[name]
	for p != nil && passThrough[p.OpType] && len(p.Inputs) > 0 {
		p = prod[p.Inputs[0]]
	}
	op := ""
	if p != nil {
		op = p.OpType
	}
	switch op {
	case "Softmax", "LogSoftmax", "Sigmoid":
		out.Activation = op
	}
	if rank != 2 {
		out.Kind = KindMap
		return out
	}
	if out.Activation != "" {
		out.Kind = KindProbabilities
		return out
	}
	// A global average of a Conv's output is a classifier too (network-in-network heads).
	for p != nil && len(p.Inputs) > 0 && (p.OpType == "GlobalAveragePool" || p.OpType == "ReduceMean" || passThrough[p.OpType]) {
		p = prod[p.Inputs[0]]
	}
	if p != nil && p.OpType == "Add" && len(p.Inputs) == 2 {
		// A bias added to a MatMul (exports that split Gemm).
		for i, in := range p.Inputs {
			if _, isConst := g.Inits[in]; isConst {
				p = prod[p.Inputs[1-i]]
				break
			}
		}
	}
	if p != nil {
		switch p.OpType {
		case "Gemm", "MatMul", "Conv":
			out.Kind = KindLogits
			return out
		}
	}
	out.Kind = KindEmbedding
	return out
}

// ClassifyOutputs classifies every graph output of m, given the rank and floatness of each as a
// run gives it (by name); override names kinds outright (as a user who knows better would) and
// must name graph outputs only.
func ClassifyOutputs(m *onnx.Model, ranks map[string]int, float map[string]bool, override map[string]OutputKind) ([]Output, error) {
	for name := range override {
		if !slices.Contains(m.Graph.Outputs, name) {
			return nil, fmt.Errorf("an output kind is given for %q, which is not an output of the model (its outputs: %s)", name, strings.Join(m.Graph.Outputs, ", "))
		}
	}
	var outs []Output
	for _, name := range m.Graph.Outputs {
		o := ClassifyOutput(m.Graph, name, ranks[name], float[name])
		if k, ok := override[name]; ok {
			o.Kind = k
		}
		outs = append(outs, o)
	}
	return outs, nil
}

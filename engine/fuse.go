package engine

import (
	"fmt"
	"math"
	"strings"

	"github.com/chanopt/chanopt/onnx"
)

// fusion is a Conv with the nodes folded into it: a BatchNormalization (into the weights), a
// residual Add and a Relu or Clip (into the kernel's epilogue), in that order, each optional.
type fusion struct {
	conv, bn, add, act *onnx.Node
	residual           string
	lo, hi             float32
	inputs, outputs    []string
	removed            []string // the intermediate values no longer computed on their own
}

func (f *fusion) opType() string {
	parts := []string{"Conv"}
	for _, n := range []*onnx.Node{f.bn, f.add, f.act} {
		if n != nil {
			parts = append(parts, n.OpType)
		}
	}
	return strings.Join(parts, "+")
}

// planFusions finds the chains to fuse. It returns the fusion per node the fused step replaces
// (the chain's last node) and the other nodes of each chain, which are skipped.
func planFusions(g *onnx.Graph, consts map[string]*Tensor, keep map[string]bool) (map[*onnx.Node]*fusion, map[*onnx.Node]bool) {
	cons := g.Consumers()
	fusions := map[*onnx.Node]*fusion{}
	skip := map[*onnx.Node]bool{}
	// sole reports the only reader of a value, when it may disappear into a fused step.
	sole := func(v string) *onnx.Node {
		if v == "" || keep[v] || g.IsOutput(v) || len(cons[v]) != 1 {
			return nil
		}
		n := cons[v][0]
		if n.Domain != "" || skip[n] || fusions[n] != nil {
			return nil
		}
		return n
	}
	isConst := func(name string) bool {
		t, ok := consts[name]
		return ok && !t.IsInt()
	}
	for _, n := range g.Nodes {
		if n.OpType != "Conv" || n.Domain != "" || len(n.Outputs) != 1 || !isConst(n.Input(1)) ||
			(n.Input(2) != "" && !isConst(n.Input(2))) {
			continue
		}
		f := &fusion{conv: n, lo: negInf, hi: posInf}
		last, v := n, n.Outputs[0]
		if next := sole(v); next != nil && next.OpType == "BatchNormalization" && next.Input(0) == v &&
			bnFoldable(next, isConst) {
			f.bn, last = next, next
			f.removed = append(f.removed, v)
			v = next.Outputs[0]
		}
		if next := sole(v); next != nil && next.OpType == "Add" && len(next.Inputs) == 2 &&
			next.Inputs[0] != next.Inputs[1] && len(next.Outputs) == 1 {
			f.add, last = next, next
			f.residual = next.Inputs[0]
			if f.residual == v {
				f.residual = next.Inputs[1]
			}
			f.removed = append(f.removed, v)
			v = next.Outputs[0]
		}
		if next := sole(v); next != nil && len(next.Outputs) == 1 && next.Input(0) == v {
			if next.OpType == "Relu" || next.OpType == "Clip" && len(next.Inputs) == 1 {
				f.act = next
				f.lo, f.hi = activationBounds(next)
			}
			if f.act != nil {
				last = next
				f.removed = append(f.removed, v)
				v = next.Outputs[0]
			}
		}
		if last == n {
			continue
		}
		f.inputs = []string{n.Input(0), n.Input(1), n.Input(2), f.residual}
		if f.bn != nil {
			f.inputs[2] = ""
		}
		f.outputs = []string{v}
		fusions[last] = f
		for _, m := range []*onnx.Node{n, f.bn, f.add, f.act} {
			if m != nil && m != last {
				skip[m] = true
			}
		}
	}
	return fusions, skip
}

// bnFoldable reports whether a BatchNormalization runs in inference mode on constant parameters.
func bnFoldable(n *onnx.Node, isConst func(string) bool) bool {
	if n.Int("training_mode", 0) != 0 || len(n.Outputs) > 1 && anyNonEmpty(n.Outputs[1:]) {
		return false
	}
	for i := 1; i <= 4; i++ {
		if !isConst(n.Input(i)) {
			return false
		}
	}
	return true
}

func anyNonEmpty(s []string) bool {
	for _, v := range s {
		if v != "" {
			return true
		}
	}
	return false
}

// buildFusedConv builds the conv op of a fusion, folding the BatchNormalization into W and B.
func buildFusedConv(b *builder, f *fusion) (op, error) {
	cb := &builder{g: b.g, n: f.conv, opset: b.opset, consts: b.consts}
	o, err := newConvOp(cb)
	if err != nil {
		return nil, err
	}
	w := b.consts[f.conv.Input(1)]
	weights := append([]float32{}, w.Data...)
	m := w.Shape[0]
	bias := make([]float32, m)
	if bt := b.consts[f.conv.Input(2)]; bt != nil {
		if bt.Len() != m {
			return nil, fmt.Errorf("B has %d values, W has %d output channels", bt.Len(), m)
		}
		copy(bias, bt.Data)
	}
	if bn := f.bn; bn != nil {
		eps := float64(bn.Float("epsilon", 1e-5))
		p := make([][]float32, 4)
		for i := range p {
			t := b.consts[bn.Input(i+1)]
			if t.Len() != m {
				return nil, fmt.Errorf("BatchNormalization %s: parameter %d has %d values for %d channels", bn.Label(), i+1, t.Len(), m)
			}
			p[i] = t.Data
		}
		scale, shift, mean, variance := p[0], p[1], p[2], p[3]
		per := len(weights) / m
		for c := 0; c < m; c++ {
			s := float64(scale[c]) / math.Sqrt(float64(variance[c])+eps)
			for i := c * per; i < (c+1)*per; i++ {
				weights[i] = float32(float64(weights[i]) * s)
			}
			bias[c] = float32((float64(bias[c])-float64(mean[c]))*s + float64(shift[c]))
		}
	}
	if err := o.setWeights(weights, w.Shape, bias); err != nil {
		return nil, err
	}
	o.lo, o.hi = f.lo, f.hi
	if f.residual != "" {
		o.resIn = 3
	}
	return o, nil
}

// planNormActs finds BatchNormalization nodes (not folded into a conv) whose output only a
// Relu or constant Clip reads; the activation becomes part of the normalisation's pass.
func planNormActs(g *onnx.Graph, skip map[*onnx.Node]bool, fusions map[*onnx.Node]*fusion, keep map[string]bool) map[*onnx.Node]*onnx.Node {
	cons := g.Consumers()
	out := map[*onnx.Node]*onnx.Node{}
	for _, n := range g.Nodes {
		if n.OpType != "BatchNormalization" || n.Domain != "" || skip[n] || fusions[n] != nil ||
			len(n.Outputs) == 0 || (len(n.Outputs) > 1 && anyNonEmpty(n.Outputs[1:])) {
			continue
		}
		v := n.Outputs[0]
		if keep[v] || g.IsOutput(v) || len(cons[v]) != 1 {
			continue
		}
		a := cons[v][0]
		if a.Domain != "" || skip[a] || fusions[a] != nil || len(a.Outputs) != 1 || a.Input(0) != v ||
			!(a.OpType == "Relu" || a.OpType == "Clip" && len(a.Inputs) == 1) {
			continue
		}
		out[n] = a
	}
	return out
}

// activationBounds returns the clamp of a Relu or Clip node.
func activationBounds(a *onnx.Node) (lo, hi float32) {
	if a.OpType == "Relu" {
		return 0, posInf
	}
	return a.Float("min", negInf), a.Float("max", posInf)
}

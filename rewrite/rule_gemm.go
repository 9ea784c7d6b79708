package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// gemm is the rule of Gemm and MatMul with a constant 2-D weight on a 2-D input: the weight's input
// axis (0, or 1 under transB) reads the input's features, which may be a flattened feature map (one
// channel owns several rows then), and its other axis makes a new space of output features, with
// a bias sliced along its last axis when it has one entry per feature.
func (a *Analysis) gemm(n *onnx.Node) error {
	x, w := n.Input(0), n.Input(1)
	wt, ok := a.Model.Graph.Inits[w]
	xs := a.shape(x)
	lx := a.layouts[x]
	why := fmt.Sprintf("%s has a computed weight or a batched input", label(n))
	if !ok || len(wt.Dims) != 2 || len(xs) != 2 || n.Int("transA", 0) != 0 || (lx != nil && lx.axis != 1) {
		a.opaque(n, why)
		return nil
	}
	inAxis, outAxis := 0, 1
	if n.OpType == "Gemm" && n.Int("transB", 0) != 0 {
		inAxis, outAxis = 1, 0
	}
	if lx == nil {
		lx = a.get(x, fmt.Sprintf("input of %s", label(n)))
	}
	if lx != nil {
		a.add(action{kind: sliceAxis, node: n, role: "in", tensor: w, input: 1, axis: inAxis, refs: lx.refs, flat: lx.flat})
	}
	c := n.Input(2)
	if n.OpType == "Gemm" && c != "" && !a.isConst(c) {
		a.opaque(n, fmt.Sprintf("%s has a computed bias", label(n)))
		return nil
	}
	out := a.newSpace(int(wt.Dims[outAxis]), label(n))
	a.add(action{kind: sliceAxis, node: n, role: "out", tensor: w, input: 1, axis: outAxis, refs: out, masks: true})
	if n.OpType == "Gemm" && c != "" {
		ct := a.Model.Graph.Inits[c]
		if len(ct.Dims) > 0 && ct.Dims[len(ct.Dims)-1] == int64(len(out)) {
			a.add(action{kind: sliceAxis, node: n, role: "out", tensor: c, input: 2, axis: len(ct.Dims) - 1, refs: out, masks: true})
		} else if ct.NumElements() != 1 {
			a.pin(out, fmt.Sprintf("%s has a bias of shape %v", label(n), ct.Dims))
		}
	}
	a.setOut(n, 0, &layout{axis: 1, refs: out})
	return nil
}

package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// reduce is the rule of ReduceMean, ReduceSum, ReduceMax and ReduceMin over attribute axes: channels
// pass (their axis shifting when earlier axes are dropped) unless the channel axis is reduced.
func (a *Analysis) reduce(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	axes := n.Ints("axes")
	rank := len(a.shape(x))
	if l.flat != nil || (axes == nil && (n.Input(1) != "" || n.Int("noop_with_empty_axes", 0) == 0)) {
		a.opaque(n, fmt.Sprintf("%s reduces over the channel axis", label(n)))
		return nil
	}
	keep := n.Int("keepdims", 1) != 0
	ax := l.axis
	for _, v := range axes {
		v = normAxis(v, rank)
		if int(v) == l.axis {
			a.opaque(n, fmt.Sprintf("%s reduces over the channel axis", label(n)))
			return nil
		}
		if int(v) < l.axis && !keep {
			ax--
		}
	}
	a.setOut(n, 0, &layout{axis: ax, refs: l.refs})
	return nil
}

// softmax is the rule of Softmax, LogSoftmax and Hardmax: channels pass unless the op normalises
// over them (before opset 13 it normalises over every axis from its axis on).
func (a *Analysis) softmax(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	rank := len(a.shape(x))
	def := int64(-1)
	if a.Model.Opset() < 13 {
		def = 1
	}
	axis := normAxis(n.Int("axis", def), rank)
	if a.Model.Opset() < 13 && int(axis) <= l.axis || int(axis) == l.axis {
		a.opaque(n, fmt.Sprintf("%s normalises over the channel axis", label(n)))
		return nil
	}
	a.setOut(n, 0, l)
	return nil
}

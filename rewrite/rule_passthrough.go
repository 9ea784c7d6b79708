package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// channelwise ops act on each element (or each channel's own positions) alone: their output keeps
// every channel where it is.
var channelwise = []string{
	"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Softsign", "Elu",
	"Selu", "Celu", "Mish", "Gelu", "Dropout", "Identity", "Cast", "Abs", "Neg", "Exp", "Log", "Sqrt",
	"Reciprocal", "Erf", "Floor", "Ceil", "Round", "ThresholdedRelu", "Sin", "Cos", "Sign",
}

// passThrough is the rule of the channelwise ops: the output (and a Dropout's mask) has the input's
// layout.
func (a *Analysis) passThrough(n *onnx.Node) error {
	l := a.layouts[n.Input(0)]
	a.setOut(n, 0, l)
	if n.OpType == "Dropout" && len(n.Outputs) > 1 {
		a.setOut(n, 1, l)
	}
	return nil
}

// pool is the rule of the pooling ops: they pool over the axes after 1, so channels on axis 1 pass
// and channels anywhere else (an NHWC map, a flattened one) would be pooled together.
func (a *Analysis) pool(n *onnx.Node) error {
	l := a.layouts[n.Input(0)]
	if l != nil && (l.axis != 1 || l.flat != nil) {
		a.opaque(n, fmt.Sprintf("%s pools over the channel axis", label(n)))
		return nil
	}
	a.setOut(n, 0, l)
	return nil
}

// pad is the rule of Pad: channels pass when the (attribute) pads leave the channel axis alone.
func (a *Analysis) pad(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	pads := n.Ints("pads")
	rank := len(a.shape(x))
	if pads == nil || len(pads) != 2*rank || n.Input(3) != "" {
		a.opaque(n, fmt.Sprintf("%s has pads chanopt cannot resolve", label(n)))
		return nil
	}
	if pads[l.axis] != 0 || pads[l.axis+rank] != 0 {
		a.opaque(n, fmt.Sprintf("%s pads the channel axis", label(n)))
		return nil
	}
	a.setOut(n, 0, l)
	return nil
}

// resize is the rule of Resize and Upsample: channels pass when the channel axis keeps its size.
func (a *Analysis) resize(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	in, out := a.shape(x), a.shape(n.Outputs[0])
	if l.flat != nil || len(in) != len(out) || in[l.axis] != out[l.axis] {
		a.opaque(n, fmt.Sprintf("%s resizes the channel axis", label(n)))
		return nil
	}
	a.setOut(n, 0, l)
	return nil
}

// shapeOf is the rule of Shape and Size: nothing to map, since shapes computed at run time follow
// the slimmer tensors by themselves.
func (a *Analysis) shapeOf(*onnx.Node) error { return nil }

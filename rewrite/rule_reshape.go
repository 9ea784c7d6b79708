package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// reshape is the rule of Flatten and Reshape. A reshape that keeps every dim up to the channel axis
// keeps the channels where they are (Slice rewrites a constant target's channel dim). A flatten of
// N×C×H×W (or N×H×W×C) into N×F gives a flattened layout: channel c owns the columns the flatMap
// formula names, which the next Gemm's weight rows follow (a constant Reshape target's feature dim
// is rewritten as kept channels × H·W). Anything else that moves the channel axis (a channel
// shuffle's N×C×H×W → N×g×C/g×H×W) is opaque.
func (a *Analysis) reshape(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	in, out := a.shape(x), a.shape(n.Outputs[0])
	why := fmt.Sprintf("%s reshapes the channel axis", label(n))
	if in == nil || out == nil || l.flat != nil {
		a.opaque(n, why)
		return nil
	}
	C := len(l.refs)
	var target []int64
	constTarget := false
	if n.OpType == "Reshape" {
		if target = n.Ints("shape"); target != nil {
			constTarget = true
		} else if v, ok := a.intValues[n.Input(1)]; ok {
			for _, d := range v {
				target = append(target, d.Size)
			}
		}
	}
	// Same prefix up to and including the channel axis: the channels stay where they are.
	prefixSame := len(out) > l.axis
	for i := 0; prefixSame && i <= l.axis; i++ {
		prefixSame = in[i] == out[i]
	}
	if prefixSame {
		if constTarget && len(target) > l.axis && target[l.axis] > 0 {
			a.add(action{kind: reshapeDim, node: n, role: "reshape", refs: l.refs, dim: l.axis, mult: 1})
		} else if !constTarget && n.OpType == "Reshape" && (len(target) <= l.axis || target[l.axis] != 0) {
			a.opaque(n, fmt.Sprintf("%s has a computed target", label(n)))
			return nil
		}
		a.setOut(n, 0, &layout{axis: l.axis, refs: l.refs})
		return nil
	}
	// Flatten of N×C×H×W (or N×H×W×C) into N×F.
	if len(out) == 2 && l.axis >= 1 && in[0] == out[0] && in[1:].Static() {
		spatial := int(in[1:].NumElements()) / C
		fm := &flatMap{A: spatial, B: 1, K: spatial}
		if l.axis == len(in)-1 {
			fm = &flatMap{A: 1, B: C, K: spatial}
		} else if l.axis != 1 {
			a.opaque(n, why)
			return nil
		}
		if n.OpType == "Flatten" && n.Int("axis", 1) != 1 {
			a.opaque(n, why)
			return nil
		}
		if n.OpType == "Reshape" {
			switch {
			case constTarget && target[1] > 0:
				a.add(action{kind: reshapeDim, node: n, role: "reshape", refs: l.refs, dim: 1, mult: spatial})
			case len(target) == 2 && (target[1] == -1):
			default:
				a.opaque(n, fmt.Sprintf("%s has a computed target", label(n)))
				return nil
			}
		}
		nl := &layout{axis: 1, refs: l.refs, flat: fm}
		if spatial == 1 {
			nl.flat = nil
		}
		a.setOut(n, 0, nl)
		return nil
	}
	if len(in) >= 3 && len(out) == len(in)+1 && l.axis == 1 {
		why = fmt.Sprintf("channel shuffle or channel split at %s is pinned", label(n))
	}
	a.opaque(n, why)
	return nil
}

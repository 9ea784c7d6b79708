package rewrite

import (
	"fmt"
	"sort"

	"github.com/chanopt/chanopt/onnx"
)

// transpose is the rule of Transpose: the channels move to wherever perm sends their axis (an NHWC
// input's channels reach axis 1). A flattened map cannot be permuted.
func (a *Analysis) transpose(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	if l.flat != nil {
		a.opaque(n, fmt.Sprintf("%s permutes a flattened feature map", label(n)))
		return nil
	}
	perm := n.Ints("perm")
	rank := len(a.shape(x))
	if perm == nil {
		for i := rank - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	for j, p := range perm {
		if int(p) == l.axis {
			a.setOut(n, 0, &layout{axis: j, refs: l.refs})
			return nil
		}
	}
	a.opaque(n, fmt.Sprintf("%s drops the channel axis", label(n)))
	return nil
}

// squeeze is the rule of Squeeze: the channel axis shifts down by the squeezed axes before it;
// squeezing the channel axis itself is opaque.
func (a *Analysis) squeeze(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	in, out := a.shape(x), a.shape(n.Outputs[0])
	axes := n.Ints("axes")
	if in == nil || out == nil || (axes == nil && n.Input(1) != "") {
		a.opaque(n, fmt.Sprintf("%s has axes chanopt cannot resolve", label(n)))
		return nil
	}
	if axes == nil {
		for i, d := range in {
			if d.Known() && d.Size == 1 {
				axes = append(axes, int64(i))
			}
		}
	}
	ax, shift := l.axis, 0
	for _, v := range axes {
		v = normAxis(v, len(in))
		if int(v) == ax {
			a.opaque(n, fmt.Sprintf("%s squeezes the channel axis", label(n)))
			return nil
		}
		if int(v) < ax {
			shift++
		}
	}
	a.setOut(n, 0, &layout{axis: ax - shift, refs: l.refs, flat: l.flat})
	return nil
}

// unsqueeze is the rule of Unsqueeze: the channel axis shifts up by the inserted axes at or before
// it. A flattened map is opaque.
func (a *Analysis) unsqueeze(n *onnx.Node) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	in, out := a.shape(x), a.shape(n.Outputs[0])
	axes := n.Ints("axes")
	if in == nil || out == nil || (axes == nil && n.Input(1) != "") || l.flat != nil {
		a.opaque(n, fmt.Sprintf("%s has axes chanopt cannot resolve", label(n)))
		return nil
	}
	sorted := append([]int64(nil), axes...)
	for i := range sorted {
		sorted[i] = normAxis(sorted[i], len(out))
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	ax := l.axis
	for _, v := range sorted {
		if int(v) <= ax {
			ax++
		}
	}
	a.setOut(n, 0, &layout{axis: ax, refs: l.refs})
	return nil
}

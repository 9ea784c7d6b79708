package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// elementwise is the rule of broadcasting binary and variadic ops (Add, Mul, Where, …) and PRelu:
// operands that carry channels along the same (right-aligned) axis are joined channel by channel, as
// a residual Add or an SE gate's Mul must keep both sides' channels at the same indices; operands of
// size 1 on that axis broadcast; constants with one entry per channel are sliced. Zeroing such a
// constant silences a channel except where it is a divisor or an exponent.
func (a *Analysis) elementwise(n *onnx.Node) error {
	out := a.shape(n.Outputs[0])
	if out == nil {
		a.opaque(n, fmt.Sprintf("%s has an unknown output shape", label(n)))
		return nil
	}
	var joined *layout
	for _, in := range n.Inputs {
		if l := a.layouts[in]; l != nil && l.flat == nil {
			s := a.shape(in)
			ax := l.axis + len(out) - len(s)
			if joined == nil {
				joined = &layout{axis: ax, refs: l.refs}
			}
		}
	}
	if joined == nil {
		// No operand carries traced channels: nothing to join (constants or pinned values only).
		for _, in := range n.Inputs {
			if l := a.layouts[in]; l != nil {
				a.opaque(n, fmt.Sprintf("%s combines a flattened map", label(n)))
				return nil
			}
		}
		a.get(n.Outputs[0], fmt.Sprintf("output of %s", label(n)))
		return nil
	}
	C := len(joined.refs)
	for i, in := range n.Inputs {
		if in == "" {
			continue
		}
		s := a.shape(in)
		if s == nil {
			a.opaque(n, fmt.Sprintf("%s has an operand of unknown shape", label(n)))
			return nil
		}
		ax := joined.axis - (len(out) - len(s)) // this operand's axis aligned with the channel axis
		if ax < 0 || (s[ax].Known() && s[ax].Size == 1) {
			continue // broadcast along the channels: passes
		}
		if !s[ax].Known() || int(s[ax].Size) != C {
			a.opaque(n, fmt.Sprintf("%s has an operand of shape %v", label(n), s))
			return nil
		}
		if a.isConst(in) {
			divisor := i == 1 && (n.OpType == "Div" || n.OpType == "Pow")
			masks := !divisor && a.Model.Graph.Inits[in].Type.IsFloat()
			a.add(action{kind: sliceAxis, node: n, role: "param", tensor: in, input: i, axis: ax, refs: joined.refs, masks: masks})
			continue
		}
		l := a.layouts[in]
		if l == nil || l.flat != nil || l.axis != ax {
			l = a.get(in, fmt.Sprintf("operand of %s", label(n)))
			if l == nil || l.axis != ax || l.flat != nil {
				a.opaque(n, fmt.Sprintf("%s combines channels along different axes", label(n)))
				return nil
			}
		}
		for j := range l.refs {
			a.union(l.refs[j], joined.refs[j])
		}
	}
	a.setOut(n, 0, joined)
	return nil
}

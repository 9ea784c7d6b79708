package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// concat is the rule of Concat. Along the channel axis the output's channels are the inputs'
// channels one after another (a constant operand adds pinned channels of its own); along any other
// axis every input must carry the same channels, so they are joined one to one.
func (a *Analysis) concat(n *onnx.Node) error {
	out := a.shape(n.Outputs[0])
	if out == nil {
		a.opaque(n, fmt.Sprintf("%s has an unknown output shape", label(n)))
		return nil
	}
	axis := int(normAxis(n.Int("axis", 0), len(out)))
	var first *layout
	for _, in := range n.Inputs {
		if l := a.layouts[in]; l != nil {
			first = l
			break
		}
	}
	if first == nil {
		return nil // a concat of shapes or constants
	}
	if first.flat != nil {
		a.opaque(n, fmt.Sprintf("%s concatenates flattened maps", label(n)))
		return nil
	}
	if axis != first.axis {
		// Along another axis every input carries the same channels.
		for _, in := range n.Inputs {
			l := a.get(in, fmt.Sprintf("operand of %s", label(n)))
			if l == nil || l.axis != first.axis || len(l.refs) != len(first.refs) || l.flat != nil {
				a.opaque(n, fmt.Sprintf("%s joins maps of different channels", label(n)))
				return nil
			}
			for j := range l.refs {
				a.union(l.refs[j], first.refs[j])
			}
		}
		a.setOut(n, 0, first)
		return nil
	}
	var refs []int
	for _, in := range n.Inputs {
		if in == "" {
			continue
		}
		l := a.get(in, fmt.Sprintf("constant operand of %s", label(n)))
		if l == nil && a.isConst(in) {
			t := a.Model.Graph.Inits[in]
			if len(t.Dims) > axis {
				c := a.newSpace(int(t.Dims[axis]), label(n))
				a.pin(c, fmt.Sprintf("%s concatenates a constant", label(n)))
				refs = append(refs, c...)
				continue
			}
		}
		if l == nil || l.axis != axis || l.flat != nil {
			a.opaque(n, fmt.Sprintf("%s concatenates maps chanopt cannot map", label(n)))
			return nil
		}
		refs = append(refs, l.refs...)
	}
	a.setOut(n, 0, &layout{axis: axis, refs: refs})
	return nil
}

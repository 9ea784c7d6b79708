package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// split is the rule of Split. Along the channel axis each output takes its run of the input's
// channels and Slice rewrites the sizes to the kept counts; along another axis every output carries
// the input's channels. Sizes given as an input tensor are not rewritten, so those splits are opaque.
func (a *Analysis) split(n *onnx.Node) error {
	l := a.layouts[n.Input(0)]
	if l == nil {
		return nil
	}
	rank := len(a.shape(n.Input(0)))
	axis := int(normAxis(n.Int("axis", 0), rank))
	if axis != l.axis {
		for i := range n.Outputs {
			a.setOut(n, i, l)
		}
		return nil
	}
	if l.flat != nil || n.Input(1) != "" {
		a.opaque(n, fmt.Sprintf("%s splits channels by computed sizes", label(n)))
		return nil
	}
	var outs [][]int
	off := 0
	for i, o := range n.Outputs {
		s := a.shape(o)
		if s == nil || !s[axis].Known() {
			a.opaque(n, fmt.Sprintf("%s has outputs of unknown size", label(n)))
			return nil
		}
		size := int(s[axis].Size)
		refs := l.refs[off : off+size]
		off += size
		outs = append(outs, refs)
		a.setOut(n, i, &layout{axis: axis, refs: refs})
	}
	a.add(action{kind: splitSizes, node: n, role: "split", outs: outs})
	return nil
}

package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// sliceOp is the rule of the Slice op with attribute bounds: a unit-step slice of the channel axis
// passes the channels in its range and Slice rewrites its bounds to the kept positions; slices of
// other axes pass every channel.
func (a *Analysis) sliceOp(n *onnx.Node) error {
	l := a.layouts[n.Input(0)]
	if l == nil {
		return nil
	}
	in := a.shape(n.Input(0))
	starts, ends, axes, steps := n.Ints("starts"), n.Ints("ends"), n.Ints("axes"), n.Ints("steps")
	if starts == nil || ends == nil || n.Input(1) != "" {
		a.opaque(n, fmt.Sprintf("%s slices by computed bounds", label(n)))
		return nil
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	for i, ax := range axes {
		if int(normAxis(ax, len(in))) != l.axis {
			continue
		}
		if l.flat != nil || (steps != nil && steps[i] != 1) {
			a.opaque(n, fmt.Sprintf("%s slices channels with a step", label(n)))
			return nil
		}
		b, e, c := onnx.SliceRange(starts[i], ends[i], 1, int64(len(l.refs)))
		if c <= 0 {
			a.opaque(n, fmt.Sprintf("%s takes no channels", label(n)))
			return nil
		}
		a.add(action{kind: sliceBounds, node: n, role: "slice", refs: l.refs, dim: i, start: b, end: e})
		a.setOut(n, 0, &layout{axis: l.axis, refs: l.refs[b:e]})
		return nil
	}
	a.setOut(n, 0, l)
	return nil
}

package engine

import "github.com/chanopt/chanopt/onnx"

// reduceGrad is the backward of ReduceMean and ReduceSum: dy broadcast back over the reduced
// axes (divided by their size for the mean).
type reduceGrad struct {
	mean      bool
	axes      []int
	hasAxes   bool
	keepDims  bool
	noopEmpty bool
	kept      []int // dy's shape with the reduced axes kept as 1
}

func newReduceGrad(n *onnx.Node) *reduceGrad {
	g := &reduceGrad{mean: n.OpType == "ReduceMean", keepDims: n.Int("keepdims", 1) != 0,
		noopEmpty: n.Int("noop_with_empty_axes", 0) != 0}
	if n.Has("axes") {
		g.axes, g.hasAxes = ints(n.Ints("axes")), true
	}
	return g
}

func (g *reduceGrad) backward(_ *ctx, a *gradArgs) error {
	dx, dy := a.din[0], a.dout[0]
	if dx == nil || dy == nil {
		return nil
	}
	x := a.in[0]
	r := len(x.Shape)
	axes, has := g.axes, g.hasAxes
	if len(a.in) > 1 && a.in[1] != nil && a.in[1].IsInt() {
		axes, has = axes[:0], true
		for _, v := range a.in[1].Ints {
			axes = append(axes, int(v))
		}
		g.axes = axes
	}
	if cap(g.kept) < r {
		g.kept = make([]int, r)
	}
	kept := g.kept[:r]
	copy(kept, x.Shape)
	count := 1
	if !has || len(axes) == 0 {
		if g.noopEmpty {
			addOrSet(dx.Data, dy.Data, a.acc[0])
			return nil
		}
		for i := range kept {
			count *= kept[i]
			kept[i] = 1
		}
	} else {
		for _, ax := range axes {
			ax, err := normAxis(ax, r)
			if err != nil {
				return err
			}
			if kept[ax] != 1 {
				count *= kept[ax]
				kept[ax] = 1
			}
		}
	}
	scale := float32(1)
	if g.mean && count > 0 {
		scale = 1 / float32(count)
	}
	l, err := makeBcast(x.Shape, x.Shape, kept)
	if err != nil {
		return err
	}
	for row := 0; row < l.outerCount; row++ {
		_, ob := l.offsets(row)
		d := dx.Data[row*l.inner : (row+1)*l.inner]
		for j := range d {
			v := scale * dy.Data[ob+j*l.isb]
			if a.acc[0] {
				d[j] += v
			} else {
				d[j] = v
			}
		}
	}
	return nil
}

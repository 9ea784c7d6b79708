package engine

import (
	"math"

	"github.com/chanopt/chanopt/onnx"
)

// softmaxGrad is the backward of Softmax (dx = y·(dy − Σdy·y)) and LogSoftmax
// (dx = dy − exp(y)·Σdy) along the forward's axis (flattened from the axis before opset 13).
type softmaxGrad struct {
	log     bool
	axis    int
	flatten bool
}

func newSoftmaxGrad(n *onnx.Node, opset int64) *softmaxGrad {
	g := &softmaxGrad{log: n.OpType == "LogSoftmax", flatten: opset < 13}
	def := int64(-1)
	if g.flatten {
		def = 1
	}
	g.axis = int(n.Int("axis", def))
	return g
}

func (g *softmaxGrad) backward(_ *ctx, a *gradArgs) error {
	dx, dy := a.din[0], a.dout[0]
	if dx == nil || dy == nil {
		return nil
	}
	y := a.out[0]
	axis, err := normAxis(g.axis, len(y.Shape))
	if err != nil {
		return err
	}
	var outer, n, inner int
	if g.flatten {
		outer, n, inner = numel(y.Shape[:axis]), numel(y.Shape[axis:]), 1
	} else {
		outer, n, inner = numel(y.Shape[:axis]), y.Shape[axis], numel(y.Shape[axis+1:])
	}
	acc := a.acc[0]
	for o := 0; o < outer; o++ {
		for b := 0; b < inner; b++ {
			base := o*n*inner + b
			var s float64
			for i := 0; i < n; i++ {
				at := base + i*inner
				if g.log {
					s += float64(dy.Data[at])
				} else {
					s += float64(dy.Data[at]) * float64(y.Data[at])
				}
			}
			for i := 0; i < n; i++ {
				at := base + i*inner
				var v float32
				if g.log {
					v = dy.Data[at] - float32(math.Exp(float64(y.Data[at]))*s)
				} else {
					v = y.Data[at] * (dy.Data[at] - float32(s))
				}
				if acc {
					dx.Data[at] += v
				} else {
					dx.Data[at] = v
				}
			}
		}
	}
	return nil
}

package engine

import (
	"fmt"
	"math"
)

// softmaxOp is Softmax, LogSoftmax or Hardmax. Before opset 13 the input is flattened to 2-D at
// axis (default 1) and normalised over the second dim; from opset 13 it is normalised along axis
// (default -1).
type softmaxOp struct {
	kind    string
	axis    int
	flatten bool
}

func buildSoftmax(b *builder) (op, error) {
	o := &softmaxOp{kind: b.n.OpType, flatten: b.opset < 13}
	def := int64(-1)
	if o.flatten {
		def = 1
	}
	o.axis = int(b.n.Int("axis", def))
	return o, nil
}

func (o *softmaxOp) inPlace() bool { return true }

func (o *softmaxOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 1 || in[0] == nil || in[0].IsInt() {
		return nil, fmt.Errorf("wants one float input")
	}
	if len(in[0].Shape) == 0 {
		return nil, fmt.Errorf("wants rank ≥ 1")
	}
	if _, err := normAxis(o.axis, len(in[0].Shape)); err != nil {
		return nil, err
	}
	return floatSpec(in[0].Shape), nil
}

func (o *softmaxOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	axis, _ := normAxis(o.axis, len(x.Shape))
	var outer, n, inner int
	if o.flatten {
		outer, n, inner = numel(x.Shape[:axis]), numel(x.Shape[axis:]), 1
	} else {
		outer, n, inner = numel(x.Shape[:axis]), x.Shape[axis], numel(x.Shape[axis+1:])
	}
	for a := 0; a < outer; a++ {
		for b := 0; b < inner; b++ {
			base := a*n*inner + b
			m := float32(math.Inf(-1))
			arg := 0
			for i := 0; i < n; i++ {
				if v := x.Data[base+i*inner]; v > m {
					m, arg = v, i
				}
			}
			switch o.kind {
			case "Hardmax":
				for i := 0; i < n; i++ {
					y.Data[base+i*inner] = 0
				}
				if n > 0 {
					y.Data[base+arg*inner] = 1
				}
			case "Softmax":
				var s float64
				for i := 0; i < n; i++ {
					e := math.Exp(float64(x.Data[base+i*inner] - m))
					y.Data[base+i*inner] = float32(e)
					s += e
				}
				inv := 1 / s
				for i := 0; i < n; i++ {
					y.Data[base+i*inner] = float32(float64(y.Data[base+i*inner]) * inv)
				}
			default: // LogSoftmax
				var s float64
				for i := 0; i < n; i++ {
					s += math.Exp(float64(x.Data[base+i*inner] - m))
				}
				ls := math.Log(s)
				for i := 0; i < n; i++ {
					y.Data[base+i*inner] = float32(float64(x.Data[base+i*inner]-m) - ls)
				}
			}
		}
	}
	return nil
}

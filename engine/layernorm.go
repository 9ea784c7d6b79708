package engine

import (
	"fmt"
	"math"
)

// layerNormOp is LayerNormalization (opset 17): normalise over the dims from axis on, then scale
// and shift; the optional mean and inverse-std-dev outputs are written when asked for.
type layerNormOp struct {
	axis int
	eps  float32
}

func buildLayerNorm(b *builder) (op, error) {
	if b.n.Int("stash_type", 1) != 1 {
		return nil, fmt.Errorf("stash_type %d is not supported", b.n.Int("stash_type", 1))
	}
	return &layerNormOp{axis: int(b.n.Int("axis", -1)), eps: b.n.Float("epsilon", 1e-5)}, nil
}

func (o *layerNormOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil || in[0].IsInt() {
		return nil, fmt.Errorf("wants float X and scale")
	}
	x := in[0]
	a, err := normAxis(o.axis, len(x.Shape))
	if err != nil {
		return nil, err
	}
	inner := x.Shape[a:]
	for i := 1; i < len(in); i++ {
		if in[i] == nil {
			continue
		}
		if _, err := broadcastShape(inner, in[i].Shape); err != nil || numel(in[i].Shape) > numel(inner) {
			return nil, fmt.Errorf("input %d of shape %v does not broadcast to %v", i, in[i].Shape, inner)
		}
	}
	stat := append([]int{}, x.Shape...)
	for i := a; i < len(stat); i++ {
		stat[i] = 1
	}
	return []spec{{shape: x.Shape}, {shape: stat}, {shape: stat}}, nil
}

func (o *layerNormOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	a, _ := normAxis(o.axis, len(x.Shape))
	outer, n := numel(x.Shape[:a]), numel(x.Shape[a:])
	inner := x.Shape[a:]
	scale := &Tensor{Shape: inner, Data: make([]float32, n)}
	if err := expandInto(in[1], scale); err != nil {
		return err
	}
	bias := &Tensor{Shape: inner, Data: make([]float32, n)}
	if len(in) > 2 && in[2] != nil {
		if err := expandInto(in[2], bias); err != nil {
			return err
		}
	}
	for r := 0; r < outer; r++ {
		xs, ys := x.Data[r*n:(r+1)*n], y.Data[r*n:(r+1)*n]
		var sum float64
		for _, v := range xs {
			sum += float64(v)
		}
		mean := sum / float64(n)
		var ss float64
		for _, v := range xs {
			d := float64(v) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(n)+float64(o.eps))
		for j, v := range xs {
			ys[j] = float32((float64(v)-mean)*inv)*scale.Data[j] + bias.Data[j]
		}
		if len(out) > 1 && out[1] != nil {
			out[1].Data[r] = float32(mean)
		}
		if len(out) > 2 && out[2] != nil {
			out[2].Data[r] = float32(inv)
		}
	}
	return nil
}

// mvnOp is MeanVarianceNormalization over the given axes (default 0, 2, 3).
type mvnOp struct{ axes []int }

func (o *mvnOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 1 || in[0] == nil || in[0].IsInt() {
		return nil, fmt.Errorf("wants a float input")
	}
	for _, a := range o.axes {
		if _, err := normAxis(a, len(in[0].Shape)); err != nil {
			return nil, err
		}
	}
	return floatSpec(in[0].Shape), nil
}

func (o *mvnOp) run(c *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	r := len(x.Shape)
	axes := make([]int64, len(o.axes))
	for i, a := range o.axes {
		axes[i] = int64(a)
	}
	red := &reduceOp{kind: "ReduceMean", axes: o.axes, hasAxes: true, keepDims: true}
	specs, err := red.infer([]*Tensor{x})
	if err != nil {
		return err
	}
	mean := allocFor(specs[0])
	if err := red.run(c, []*Tensor{x}, []*Tensor{mean}); err != nil {
		return err
	}
	sq := &Tensor{Shape: x.Shape, Data: make([]float32, x.Len())}
	st := bcastStrides(mean.Shape, x.Shape)
	idx := make([]int, r)
	at := func() int {
		o := 0
		for k := 0; k < r; k++ {
			o += idx[k] * st[k]
		}
		return o
	}
	step := func() {
		for k := r - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < x.Shape[k] {
				return
			}
			idx[k] = 0
		}
	}
	for i := range x.Data {
		d := x.Data[i] - mean.Data[at()]
		sq.Data[i] = d * d
		step()
	}
	variance := allocFor(specs[0])
	if err := red.run(c, []*Tensor{sq}, []*Tensor{variance}); err != nil {
		return err
	}
	for i := range idx {
		idx[i] = 0
	}
	for i := range x.Data {
		j := at()
		y.Data[i] = float32(float64(x.Data[i]-mean.Data[j]) / (math.Sqrt(float64(variance.Data[j])) + 1e-9))
		step()
	}
	return nil
}

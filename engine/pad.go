package engine

import (
	"fmt"
	"slices"
)

// padOp is Pad: constant, reflect, edge or wrap, with pads (negative ones crop) from the
// attribute or run-time inputs, over all axes or the given ones.
type padOp struct {
	mode  string
	pads  []int64
	value float32
	dyn   bool
	// The begin offsets resolved for the last static input shape, so runs do not allocate.
	lastShape, lastBegin []int
}

func buildPad(b *builder) (op, error) {
	n := b.n
	o := &padOp{mode: n.String("mode", "constant"), pads: n.Ints("pads"), value: n.Float("value", 0)}
	if o.pads == nil && b.opset < 11 {
		o.pads = n.Ints("paddings") // opset 1
	}
	switch o.mode {
	case "constant", "reflect", "edge", "wrap":
	default:
		return nil, fmt.Errorf("mode %q is not supported", o.mode)
	}
	o.dyn = len(n.Inputs) > 1
	if !o.dyn && o.pads == nil {
		return nil, fmt.Errorf("no pads")
	}
	return o, nil
}

// resolve returns per-dim begin pads and the output shape, and the fill value.
func (o *padOp) resolve(in []*Tensor) (begin, shape []int, value float32, err error) {
	x := in[0]
	r := len(x.Shape)
	pads, value := o.pads, o.value
	var axes []int64
	if o.dyn {
		if len(in) > 1 && in[1] != nil {
			if pads, err = intsOf(in[1], "pads"); err != nil {
				return
			}
		}
		if len(in) > 2 && in[2] != nil && in[2].Len() > 0 {
			v, e := scalarOf(in[2])
			if e != nil {
				return nil, nil, 0, e
			}
			value = float32(v)
		}
		if len(in) > 3 && in[3] != nil {
			if axes, err = intsOf(in[3], "axes"); err != nil {
				return
			}
		}
	}
	if axes == nil {
		axes = make([]int64, r)
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, nil, 0, fmt.Errorf("pads %v for %d axes", pads, len(axes))
	}
	begin, shape = make([]int, r), append([]int{}, x.Shape...)
	for i, a := range axes {
		ax, e := normAxis(int(a), r)
		if e != nil {
			return nil, nil, 0, e
		}
		b, en := int(pads[i]), int(pads[i+len(axes)])
		begin[ax] = b
		shape[ax] += b + en
		if shape[ax] < 0 {
			return nil, nil, 0, fmt.Errorf("pads %v crop more than dim %d has", pads, ax)
		}
		if o.mode != "constant" && x.Shape[ax] == 0 && shape[ax] > 0 {
			return nil, nil, 0, fmt.Errorf("cannot %s-pad an empty dim", o.mode)
		}
	}
	return begin, shape, value, nil
}

func (o *padOp) infer(in []*Tensor) ([]spec, error) {
	_, shape, _, err := o.resolve(in)
	if err != nil {
		return nil, err
	}
	return []spec{{shape: shape, isInt: in[0].IsInt()}}, nil
}

// source maps an output index to the input index along a dim of size d, or -1 for the fill value.
func (o *padOp) source(i, begin, d int) int {
	j := i - begin
	if j >= 0 && j < d {
		return j
	}
	switch o.mode {
	case "edge":
		return max(0, min(j, d-1))
	case "reflect":
		if d == 1 {
			return 0
		}
		period := 2 * (d - 1)
		j = ((j % period) + period) % period
		if j >= d {
			j = period - j
		}
		return j
	case "wrap":
		return ((j % d) + d) % d
	}
	return -1
}

func (o *padOp) run(_ *ctx, in, out []*Tensor) error {
	var begin []int
	value := o.value
	if !o.dyn && o.lastShape != nil && slices.Equal(o.lastShape, in[0].Shape) {
		begin = o.lastBegin
	} else {
		var err error
		if begin, _, value, err = o.resolve(in); err != nil {
			return err
		}
		if !o.dyn {
			o.lastShape, o.lastBegin = append([]int(nil), in[0].Shape...), begin
		}
	}
	x, y := in[0], out[0]
	r := len(y.Shape)
	if r == 0 {
		copyTensor(y, x)
		return nil
	}
	// Small fixed buffers keep the hot path free of allocations for every rank CNNs use.
	var stBuf, idxBuf [8]int
	var st, idx []int
	if r <= len(stBuf) {
		st, idx = stBuf[:r], idxBuf[:r]
		acc := 1
		for k := r - 1; k >= 0; k-- {
			st[k] = acc
			acc *= x.Shape[k]
		}
	} else {
		st, idx = strides(x.Shape), make([]int, r)
	}
	last := y.Shape[r-1]
	for i := 0; i < y.Len(); i += last {
		src, fill := 0, false
		for k := 0; k < r-1; k++ {
			j := o.source(idx[k], begin[k], x.Shape[k])
			if j < 0 {
				fill = true
				break
			}
			src += j * st[k]
		}
		for t := 0; t < last; t++ {
			j := -1
			if !fill {
				j = o.source(t, begin[r-1], x.Shape[r-1])
			}
			if x.IsInt() {
				if j < 0 {
					y.Ints[i+t] = int64(value)
				} else {
					y.Ints[i+t] = x.Ints[src+j]
				}
			} else if j < 0 {
				y.Data[i+t] = value
			} else {
				y.Data[i+t] = x.Data[src+j]
			}
		}
		for k := r - 2; k >= 0; k-- {
			idx[k]++
			if idx[k] < y.Shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return nil
}

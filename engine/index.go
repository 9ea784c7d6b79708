package engine

import "fmt"

// gatherElementsOp is GatherElements: y[i…] = x[i… with index[i…] on axis].
type gatherElementsOp struct{ axis int }

func (o *gatherElementsOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil || !in[1].IsInt() || len(in[0].Shape) != len(in[1].Shape) {
		return nil, fmt.Errorf("wants data and int indices of the same rank")
	}
	if _, err := normAxis(o.axis, len(in[0].Shape)); err != nil {
		return nil, err
	}
	return []spec{{shape: in[1].Shape, isInt: in[0].IsInt()}}, nil
}

func (o *gatherElementsOp) run(_ *ctx, in, out []*Tensor) error {
	x, idx, y := in[0], in[1], out[0]
	r := len(x.Shape)
	a, _ := normAxis(o.axis, r)
	st := strides(x.Shape)
	pos := make([]int, r)
	for i, v := range idx.Ints {
		d := int64(x.Shape[a])
		if v < 0 {
			v += d
		}
		if v < 0 || v >= d {
			return fmt.Errorf("index %d out of range for dim %d", idx.Ints[i], d)
		}
		src := 0
		for k := 0; k < r; k++ {
			p := pos[k]
			if k == a {
				p = int(v)
			} else if p >= x.Shape[k] {
				return fmt.Errorf("indices %v do not fit data %v", idx.Shape, x.Shape)
			}
			src += p * st[k]
		}
		if x.IsInt() {
			y.Ints[i] = x.Ints[src]
		} else {
			y.Data[i] = x.Data[src]
		}
		for k := r - 1; k >= 0; k-- {
			pos[k]++
			if pos[k] < idx.Shape[k] {
				break
			}
			pos[k] = 0
		}
	}
	return nil
}

// oneHotOp is OneHot: indices → a new axis of depth with off/on values.
type oneHotOp struct{ axis int }

func (o *oneHotOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 3 || in[0] == nil || in[1] == nil || in[2] == nil || in[2].Len() != 2 || in[1].Len() != 1 {
		return nil, fmt.Errorf("wants indices, a scalar depth and [off, on] values")
	}
	d, err := scalarOf(in[1])
	if err != nil || d < 1 {
		return nil, fmt.Errorf("depth must be ≥ 1")
	}
	r := len(in[0].Shape) + 1
	a, err := normAxis(o.axis, r)
	if err != nil {
		return nil, err
	}
	s := append(append(append([]int{}, in[0].Shape[:a]...), int(d)), in[0].Shape[a:]...)
	return []spec{{shape: s, isInt: in[2].IsInt()}}, nil
}

func (o *oneHotOp) run(_ *ctx, in, out []*Tensor) error {
	idx, vals, y := in[0], in[2], out[0]
	d, _ := scalarOf(in[1])
	depth := int(d)
	a, _ := normAxis(o.axis, len(idx.Shape)+1)
	outer, inner := numel(idx.Shape[:a]), numel(idx.Shape[a:])
	for i := 0; i < y.Len(); i++ {
		if y.IsInt() {
			y.Ints[i] = vals.Ints[0]
		} else {
			y.Data[i] = vals.Data[0]
		}
	}
	for p := 0; p < outer; p++ {
		for q := 0; q < inner; q++ {
			v := int(floatAt(idx, p*inner+q))
			if v < 0 {
				v += depth
			}
			if v < 0 || v >= depth {
				continue
			}
			at := (p*depth+v)*inner + q
			if y.IsInt() {
				y.Ints[at] = vals.Ints[1]
			} else {
				y.Data[at] = vals.Data[1]
			}
		}
	}
	return nil
}

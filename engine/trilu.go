package engine

import "fmt"

// triluOp is Trilu: keep the upper (or lower) triangle of the last two dims from diagonal k.
type triluOp struct{ upper bool }

func (o *triluOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) < 1 || in[0] == nil || len(in[0].Shape) < 2 {
		return nil, fmt.Errorf("wants a tensor of rank ≥ 2")
	}
	return []spec{{shape: in[0].Shape, isInt: in[0].IsInt()}}, nil
}

func (o *triluOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	k := int64(0)
	if len(in) > 1 && in[1] != nil {
		v, err := intsOf(in[1], "k")
		if err != nil || len(v) != 1 {
			return fmt.Errorf("k must be an int scalar")
		}
		k = v[0]
	}
	r := len(x.Shape)
	rows, cols := x.Shape[r-2], x.Shape[r-1]
	for i := 0; i < x.Len(); i++ {
		col := int64(i % cols)
		row := int64(i / cols % rows)
		keep := col-row >= k
		if !o.upper {
			keep = col-row <= k
		}
		switch {
		case x.IsInt() && keep:
			y.Ints[i] = x.Ints[i]
		case x.IsInt():
			y.Ints[i] = 0
		case keep:
			y.Data[i] = x.Data[i]
		default:
			y.Data[i] = 0
		}
	}
	return nil
}

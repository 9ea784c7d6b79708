package engine

import (
	"fmt"
	"sort"
)

// topKOp is TopK along an axis: values and int64 indices, largest or smallest, sorted.
type topKOp struct {
	axis            int
	largest, sorted bool
}

func (o *topKOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("wants x and k")
	}
	k, err := intsOf(in[1], "k")
	if err != nil || len(k) != 1 {
		return nil, fmt.Errorf("k must be a one-element int tensor")
	}
	a, err := normAxis(o.axis, len(in[0].Shape))
	if err != nil {
		return nil, err
	}
	if k[0] < 0 || int(k[0]) > in[0].Shape[a] {
		return nil, fmt.Errorf("k %d for a dim of %d", k[0], in[0].Shape[a])
	}
	s := append([]int{}, in[0].Shape...)
	s[a] = int(k[0])
	return []spec{{shape: s, isInt: in[0].IsInt()}, {shape: s, isInt: true}}, nil
}

func (o *topKOp) run(_ *ctx, in, out []*Tensor) error {
	x := in[0]
	a, _ := normAxis(o.axis, len(x.Shape))
	k := int(in[1].Ints[0])
	outer, n, inner := numel(x.Shape[:a]), x.Shape[a], numel(x.Shape[a+1:])
	order := make([]int, n)
	for p := 0; p < outer; p++ {
		for q := 0; q < inner; q++ {
			at := func(i int) float64 { return floatAt(x, (p*n+i)*inner+q) }
			for i := range order {
				order[i] = i
			}
			sort.SliceStable(order, func(i, j int) bool {
				vi, vj := at(order[i]), at(order[j])
				if o.largest {
					return vi > vj
				}
				return vi < vj
			})
			for j := 0; j < k; j++ {
				dst := (p*k+j)*inner + q
				src := (p*n+order[j])*inner + q
				if x.IsInt() {
					out[0].Ints[dst] = x.Ints[src]
				} else {
					out[0].Data[dst] = x.Data[src]
				}
				if len(out) > 1 && out[1] != nil {
					out[1].Ints[dst] = int64(order[j])
				}
			}
		}
	}
	return nil
}

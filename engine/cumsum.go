package engine

import "fmt"

// cumSumOp is CumSum along a run-time axis, optionally exclusive and/or reversed.
type cumSumOp struct{ exclusive, reverse bool }

func (o *cumSumOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil || !in[1].IsInt() || in[1].Len() != 1 {
		return nil, fmt.Errorf("wants x and a scalar int axis")
	}
	if _, err := normAxis(int(in[1].Ints[0]), len(in[0].Shape)); err != nil {
		return nil, err
	}
	return []spec{{shape: in[0].Shape, isInt: in[0].IsInt()}}, nil
}

func (o *cumSumOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	a, _ := normAxis(int(in[1].Ints[0]), len(x.Shape))
	outer, n, inner := numel(x.Shape[:a]), x.Shape[a], numel(x.Shape[a+1:])
	for p := 0; p < outer; p++ {
		for q := 0; q < inner; q++ {
			var fs float64
			var is int64
			for s := 0; s < n; s++ {
				j := s
				if o.reverse {
					j = n - 1 - s
				}
				at := (p*n+j)*inner + q
				if x.IsInt() {
					if o.exclusive {
						y.Ints[at] = is
						is += x.Ints[at]
					} else {
						is += x.Ints[at]
						y.Ints[at] = is
					}
				} else {
					if o.exclusive {
						y.Data[at] = float32(fs)
						fs += float64(x.Data[at])
					} else {
						fs += float64(x.Data[at])
						y.Data[at] = float32(fs)
					}
				}
			}
		}
	}
	return nil
}

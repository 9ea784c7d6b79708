package engine

import (
	"fmt"
	"math"
)

// reduceOp is one of the Reduce* ops over a set of axes (attribute, constant or run-time input).
type reduceOp struct {
	kind      string
	axes      []int
	hasAxes   bool
	keepDims  bool
	noopEmpty bool
	axesInput bool // axes come from input 1 at run time
}

func buildReduce(b *builder) (op, error) {
	n := b.n
	o := &reduceOp{kind: n.OpType, keepDims: n.Int("keepdims", 1) != 0, noopEmpty: n.Int("noop_with_empty_axes", 0) != 0}
	if n.Has("axes") {
		o.axes, o.hasAxes = b.ints("axes"), true
	}
	if n.Input(1) != "" {
		o.axesInput = true
	}
	return o, nil
}

// reduced resolves the reduced axes for an input of rank r.
func (o *reduceOp) reduced(in []*Tensor, r int) ([]bool, bool, error) {
	axes, has := o.axes, o.hasAxes
	if o.axesInput && len(in) > 1 && in[1] != nil {
		if !in[1].IsInt() {
			return nil, false, fmt.Errorf("axes must be int64")
		}
		axes, has = make([]int, len(in[1].Ints)), true
		for i, v := range in[1].Ints {
			axes[i] = int(v)
		}
	}
	red := make([]bool, r)
	if !has || len(axes) == 0 {
		if o.noopEmpty {
			return red, true, nil
		}
		for i := range red {
			red[i] = true
		}
		return red, false, nil
	}
	for _, a := range axes {
		a, err := normAxis(a, r)
		if err != nil {
			return nil, false, err
		}
		red[a] = true
	}
	return red, false, nil
}

func (o *reduceOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, fmt.Errorf("missing input")
	}
	x := in[0]
	red, _, err := o.reduced(in, len(x.Shape))
	if err != nil {
		return nil, err
	}
	var shape []int
	for i, d := range x.Shape {
		switch {
		case !red[i]:
			shape = append(shape, d)
		case o.keepDims:
			shape = append(shape, 1)
		}
	}
	if shape == nil {
		shape = []int{}
	}
	return []spec{{shape: shape, isInt: x.IsInt()}}, nil
}

func (o *reduceOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	r := len(x.Shape)
	if !o.axesInput && !x.IsInt() && o.suffixRun(x, y) {
		return nil
	}
	red, noop, err := o.reduced(in, r)
	if err != nil {
		return err
	}
	if noop {
		if x.IsInt() {
			copy(y.Ints, x.Ints)
		} else {
			copy(y.Data, x.Data)
		}
		return nil
	}
	// output strides over the input's dims (0 for reduced ones)
	st := make([]int, r)
	n := 1
	for i := r - 1; i >= 0; i-- {
		if !red[i] {
			st[i] = n
			n *= x.Shape[i]
		}
	}
	count := 1
	for i, d := range x.Shape {
		if red[i] {
			count *= d
		}
	}
	acc := make([]float64, y.Len())
	init := 0.0
	switch o.kind {
	case "ReduceMax":
		init = math.Inf(-1)
	case "ReduceMin":
		init = math.Inf(1)
	case "ReduceProd":
		init = 1
	}
	for i := range acc {
		acc[i] = init
	}
	idx := make([]int, r)
	for i := 0; i < x.Len(); i++ {
		at := 0
		for k := 0; k < r; k++ {
			at += idx[k] * st[k]
		}
		var v float64
		if x.IsInt() {
			v = float64(x.Ints[i])
		} else {
			v = float64(x.Data[i])
		}
		switch o.kind {
		case "ReduceMax":
			acc[at] = math.Max(acc[at], v)
		case "ReduceMin":
			acc[at] = math.Min(acc[at], v)
		case "ReduceProd":
			acc[at] *= v
		case "ReduceL1":
			acc[at] += math.Abs(v)
		case "ReduceL2", "ReduceSumSquare":
			acc[at] += v * v
		case "ReduceLogSumExp":
			acc[at] += math.Exp(v)
		default:
			acc[at] += v
		}
		for k := r - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < x.Shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	for i, v := range acc {
		switch o.kind {
		case "ReduceMean":
			v /= float64(count)
		case "ReduceL2":
			v = math.Sqrt(v)
		case "ReduceLogSum", "ReduceLogSumExp":
			v = math.Log(v)
		}
		if y.IsInt() {
			y.Ints[i] = int64(v)
		} else {
			y.Data[i] = float32(v)
		}
	}
	return nil
}

// argOp is ArgMax or ArgMin along an axis.
type argOp struct {
	min, keepDims, last bool
	axis                int
}

func buildArg(b *builder) (op, error) {
	return &argOp{min: b.n.OpType == "ArgMin", keepDims: b.n.Int("keepdims", 1) != 0,
		last: b.n.Int("select_last_index", 0) != 0, axis: int(b.n.Int("axis", 0))}, nil
}

func (o *argOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 1 || in[0] == nil {
		return nil, fmt.Errorf("wants one input")
	}
	x := in[0]
	a, err := normAxis(o.axis, len(x.Shape))
	if err != nil {
		return nil, err
	}
	shape := append([]int{}, x.Shape...)
	if o.keepDims {
		shape[a] = 1
	} else {
		shape = append(shape[:a], shape[a+1:]...)
	}
	return []spec{{shape: shape, isInt: true}}, nil
}

func (o *argOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	a, _ := normAxis(o.axis, len(x.Shape))
	outer, n, inner := numel(x.Shape[:a]), x.Shape[a], numel(x.Shape[a+1:])
	val := func(i int) float64 {
		if x.IsInt() {
			return float64(x.Ints[i])
		}
		return float64(x.Data[i])
	}
	for p := 0; p < outer; p++ {
		for q := 0; q < inner; q++ {
			best, bi := 0.0, 0
			for i := 0; i < n; i++ {
				v := val((p*n+i)*inner + q)
				better := i == 0 || (!o.min && v > best) || (o.min && v < best) || (o.last && v == best)
				if better {
					best, bi = v, i
				}
			}
			y.Ints[p*inner+q] = int64(bi)
		}
	}
	return nil
}

// suffixRun handles the common case without allocating: float input, constant axes that are the
// trailing dims (global pooling written as ReduceMean over H and W). It reports whether it ran.
func (o *reduceOp) suffixRun(x, y *Tensor) bool {
	r := len(x.Shape)
	if r > maxRank {
		return false
	}
	var red [maxRank]bool
	if !o.hasAxes || len(o.axes) == 0 {
		if o.noopEmpty {
			return false
		}
		for i := 0; i < r; i++ {
			red[i] = true
		}
	}
	for _, a := range o.axes {
		if a < 0 {
			a += r
		}
		if a < 0 || a >= r {
			return false
		}
		red[a] = true
	}
	first := r
	for first > 0 && red[first-1] {
		first--
	}
	for i := 0; i < first; i++ {
		if red[i] {
			return false // not a trailing block
		}
	}
	outer, inner := numel(x.Shape[:first]), numel(x.Shape[first:])
	if outer != y.Len() {
		return false
	}
	for i := 0; i < outer; i++ {
		row := x.Data[i*inner : (i+1)*inner]
		var acc float64
		switch o.kind {
		case "ReduceMean", "ReduceSum":
			for _, v := range row {
				acc += float64(v)
			}
			if o.kind == "ReduceMean" && inner > 0 {
				acc /= float64(inner)
			}
		case "ReduceMax":
			acc = math.Inf(-1)
			for _, v := range row {
				acc = math.Max(acc, float64(v))
			}
		case "ReduceMin":
			acc = math.Inf(1)
			for _, v := range row {
				acc = math.Min(acc, float64(v))
			}
		default:
			return false // other reductions take the general path (nothing written yet: i is 0)
		}
		y.Data[i] = float32(acc)
	}
	return true
}

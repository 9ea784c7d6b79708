package engine

import (
	"fmt"
	"math"
	"sort"
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

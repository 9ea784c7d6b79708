package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// intsOf reads an int tensor's values (shape arithmetic inputs).
func intsOf(t *Tensor, what string) ([]int64, error) {
	if t == nil {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if !t.IsInt() {
		return nil, fmt.Errorf("%s must be an int64 tensor", what)
	}
	return t.Ints, nil
}

// flattenOp is Flatten: a view as [prod(dims[:axis]), prod(dims[axis:])].
type flattenOp struct{ axis int }

func (o *flattenOp) isView() {}

func (o *flattenOp) infer(in []*Tensor) ([]spec, error) {
	x := in[0]
	a := o.axis
	if a < 0 {
		a += len(x.Shape)
	}
	if a < 0 || a > len(x.Shape) {
		return nil, fmt.Errorf("axis %d out of range for rank %d", o.axis, len(x.Shape))
	}
	return []spec{{shape: []int{numel(x.Shape[:a]), numel(x.Shape[a:])}, isInt: x.IsInt()}}, nil
}

func (o *flattenOp) run(*ctx, []*Tensor, []*Tensor) error { return nil }

// reshapeOp is Reshape (0 copies a dim unless allowzero, -1 is inferred).
type reshapeOp struct {
	shape     []int64
	allowZero bool
}

func buildReshape(b *builder) (op, error) {
	o := &reshapeOp{shape: b.n.Ints("shape"), allowZero: b.n.Int("allowzero", 0) != 0}
	if o.shape == nil && b.n.Input(1) == "" {
		return nil, fmt.Errorf("no shape")
	}
	return o, nil
}

func (o *reshapeOp) isView() {}

func (o *reshapeOp) infer(in []*Tensor) ([]spec, error) {
	x := in[0]
	target := o.shape
	if len(in) > 1 && in[1] != nil {
		var err error
		if target, err = intsOf(in[1], "shape"); err != nil {
			return nil, err
		}
	}
	shape, err := reshapeDims(x.Shape, target, o.allowZero)
	if err != nil {
		return nil, err
	}
	return []spec{{shape: shape, isInt: x.IsInt()}}, nil
}

func reshapeDims(in []int, target []int64, allowZero bool) ([]int, error) {
	out := make([]int, len(target))
	infer := -1
	known := 1
	for i, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1", target)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dim %d of %v", target, i, in)
			}
			out[i] = in[i]
		case d < 0:
			return nil, fmt.Errorf("shape %v has a negative dim", target)
		default:
			out[i] = int(d)
		}
		known *= out[i]
	}
	total := numel(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		out[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d values) to %v", in, total, target)
	}
	return out, nil
}

func (o *reshapeOp) run(*ctx, []*Tensor, []*Tensor) error { return nil }

// squeezeOp is Squeeze or Unsqueeze.
type squeezeOp struct {
	unsqueeze bool
	axes      []int64
}

func buildSqueeze(b *builder) (op, error) {
	o := &squeezeOp{unsqueeze: b.n.OpType == "Unsqueeze", axes: b.n.Ints("axes")}
	if o.unsqueeze && o.axes == nil && b.n.Input(1) == "" {
		return nil, fmt.Errorf("no axes")
	}
	return o, nil
}

func (o *squeezeOp) isView() {}

func (o *squeezeOp) infer(in []*Tensor) ([]spec, error) {
	x := in[0]
	axes := o.axes
	if len(in) > 1 && in[1] != nil {
		var err error
		if axes, err = intsOf(in[1], "axes"); err != nil {
			return nil, err
		}
	}
	if o.unsqueeze {
		r := len(x.Shape) + len(axes)
		mark := make([]bool, r)
		for _, a := range axes {
			a, err := normAxis(int(a), r)
			if err != nil {
				return nil, err
			}
			if mark[a] {
				return nil, fmt.Errorf("axis %d repeated", a)
			}
			mark[a] = true
		}
		shape := make([]int, 0, r)
		j := 0
		for i := 0; i < r; i++ {
			if mark[i] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, x.Shape[j])
				j++
			}
		}
		return []spec{{shape: shape, isInt: x.IsInt()}}, nil
	}
	mark := make([]bool, len(x.Shape))
	if len(axes) == 0 {
		for i, d := range x.Shape {
			mark[i] = d == 1
		}
	}
	for _, a := range axes {
		a, err := normAxis(int(a), len(x.Shape))
		if err != nil {
			return nil, err
		}
		if x.Shape[a] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of shape %v", a, x.Shape)
		}
		mark[a] = true
	}
	shape := []int{}
	for i, d := range x.Shape {
		if !mark[i] {
			shape = append(shape, d)
		}
	}
	return []spec{{shape: shape, isInt: x.IsInt()}}, nil
}

func (o *squeezeOp) run(*ctx, []*Tensor, []*Tensor) error { return nil }

// identityOp is Identity (and Dropout at inference with one output).
type identityOp struct{}

func (o *identityOp) isView() {}

func (o *identityOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, fmt.Errorf("missing input")
	}
	return []spec{{shape: in[0].Shape, isInt: in[0].IsInt()}}, nil
}

func (o *identityOp) run(*ctx, []*Tensor, []*Tensor) error { return nil }

// dropoutOp is Dropout at inference: a copy, and a mask of ones when asked for.
type dropoutOp struct{}

func buildDropout(b *builder) (op, error) {
	if b.n.Input(2) != "" {
		if t := b.konst(2); t == nil || !t.IsInt() || t.Ints[0] != 0 {
			return nil, fmt.Errorf("training mode is not supported")
		}
	}
	if len(b.n.Outputs) < 2 || b.n.Outputs[1] == "" {
		return &identityOp{}, nil
	}
	return &dropoutOp{}, nil
}

func (o *dropoutOp) infer(in []*Tensor) ([]spec, error) {
	return []spec{{shape: in[0].Shape, isInt: in[0].IsInt()}, {shape: in[0].Shape, isInt: true}}, nil
}

func (o *dropoutOp) run(_ *ctx, in, out []*Tensor) error {
	copyTensor(out[0], in[0])
	if len(out) > 1 && out[1] != nil {
		for i := range out[1].Ints {
			out[1].Ints[i] = 1
		}
	}
	return nil
}

func copyTensor(dst, src *Tensor) {
	if src.IsInt() {
		copy(dst.Ints, src.Ints)
	} else {
		copy(dst.Data, src.Data)
	}
}

// transposeOp permutes dims (default: reversed).
type transposeOp struct {
	perm []int
	rev  []int // the default permutation for the last rank seen
	rt   rangeTask
	// run state
	x, y     *Tensor
	p, inSt  []int
	outShape []int
}

func (o *transposeOp) permFor(r int) ([]int, error) {
	if o.perm == nil {
		if len(o.rev) != r {
			o.rev = make([]int, r)
			for i := range o.rev {
				o.rev[i] = r - 1 - i
			}
		}
		return o.rev, nil
	}
	if len(o.perm) != r {
		return nil, fmt.Errorf("perm %v for rank %d", o.perm, r)
	}
	seen := make([]bool, r)
	for _, a := range o.perm {
		if a < 0 || a >= r || seen[a] {
			return nil, fmt.Errorf("perm %v is not a permutation", o.perm)
		}
		seen[a] = true
	}
	return o.perm, nil
}

func (o *transposeOp) infer(in []*Tensor) ([]spec, error) {
	x := in[0]
	p, err := o.permFor(len(x.Shape))
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(p))
	for i, a := range p {
		shape[i] = x.Shape[a]
	}
	return []spec{{shape: shape, isInt: x.IsInt()}}, nil
}

func (o *transposeOp) run(c *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	p, err := o.permFor(len(x.Shape))
	if err != nil {
		return err
	}
	r := len(p)
	if r == 0 {
		copyTensor(y, x)
		return nil
	}
	if cap(o.inSt) < r {
		o.inSt = make([]int, r)
	}
	st := o.inSt[:r]
	for k, acc := r-1, 1; k >= 0; k-- {
		st[k] = acc
		acc *= x.Shape[k]
	}
	o.x, o.y, o.p, o.inSt, o.outShape = x, y, p, st, y.Shape
	if o.rt.fn == nil {
		o.rt.fn = o.apply
	}
	// parallel over the outer output dim
	c.parallelRange(y.Shape[0], y.Len(), &o.rt)
	o.x, o.y = nil, nil
	return nil
}

// apply writes output slices [lo, hi) of the first output dim.
func (o *transposeOp) apply(lo, hi int) {
	r := len(o.p)
	var idx, ist, dims [maxRank]int
	if r > maxRank {
		o.applySlow(lo, hi)
		return
	}
	for i := 0; i < r; i++ {
		ist[i] = o.inSt[o.p[i]]
		dims[i] = o.outShape[i]
	}
	inner := numel(o.outShape[1:])
	last := ist[r-1]
	lastN := dims[r-1]
	for a := lo; a < hi; a++ {
		clear(idx[:])
		idx[0] = a
		base := a * inner
		for j := 0; j < inner; j += lastN {
			src := 0
			for k := 0; k < r-1; k++ {
				src += idx[k] * ist[k]
			}
			if o.x.IsInt() {
				for t := 0; t < lastN; t++ {
					o.y.Ints[base+j+t] = o.x.Ints[src+t*last]
				}
			} else {
				dst := o.y.Data[base+j : base+j+lastN]
				for t := range dst {
					dst[t] = o.x.Data[src+t*last]
				}
			}
			if r == 1 {
				break
			}
			for k := r - 2; k >= 1; k-- {
				idx[k]++
				if idx[k] < dims[k] {
					break
				}
				idx[k] = 0
			}
		}
	}
}

func (o *transposeOp) applySlow(lo, hi int) {
	r := len(o.p)
	idx := make([]int, r)
	inner := numel(o.outShape[1:])
	for a := lo; a < hi; a++ {
		for i := 0; i < inner; i++ {
			rem := i
			for k := r - 1; k >= 1; k-- {
				idx[k] = rem % o.outShape[k]
				rem /= o.outShape[k]
			}
			idx[0] = a
			src := 0
			for k := 0; k < r; k++ {
				src += idx[k] * o.inSt[o.p[k]]
			}
			if o.x.IsInt() {
				o.y.Ints[a*inner+i] = o.x.Ints[src]
			} else {
				o.y.Data[a*inner+i] = o.x.Data[src]
			}
		}
	}
}

// concatOp joins inputs along an axis.
type concatOp struct{ axis int }

func (o *concatOp) infer(in []*Tensor) ([]spec, error) {
	var first *Tensor
	for _, t := range in {
		if t != nil {
			first = t
			break
		}
	}
	if first == nil {
		return nil, fmt.Errorf("no inputs")
	}
	r := len(first.Shape)
	a, err := normAxis(o.axis, r)
	if err != nil {
		return nil, err
	}
	shape := append([]int{}, first.Shape...)
	shape[a] = 0
	for _, t := range in {
		if t == nil {
			continue
		}
		if len(t.Shape) != r || t.IsInt() != first.IsInt() {
			return nil, fmt.Errorf("inputs %v and %v do not concatenate", first.Shape, t.Shape)
		}
		for i := range t.Shape {
			if i != a && t.Shape[i] != first.Shape[i] {
				return nil, fmt.Errorf("inputs %v and %v do not concatenate on axis %d", first.Shape, t.Shape, a)
			}
		}
		shape[a] += t.Shape[a]
	}
	return []spec{{shape: shape, isInt: first.IsInt()}}, nil
}

func (o *concatOp) run(_ *ctx, in, out []*Tensor) error {
	y := out[0]
	a, _ := normAxis(o.axis, len(y.Shape))
	outer := numel(y.Shape[:a])
	rowOut := numel(y.Shape[a:])
	off := 0
	for _, t := range in {
		if t == nil {
			continue
		}
		row := numel(t.Shape[a:])
		for i := 0; i < outer; i++ {
			if t.IsInt() {
				copy(y.Ints[i*rowOut+off:i*rowOut+off+row], t.Ints[i*row:(i+1)*row])
			} else {
				copy(y.Data[i*rowOut+off:i*rowOut+off+row], t.Data[i*row:(i+1)*row])
			}
		}
		off += row
	}
	return nil
}

// splitOp cuts a tensor along an axis into parts (sizes from the attribute, an input, or equal).
type splitOp struct {
	axis  int
	sizes []int64
	nOut  int
}

func buildSplit(b *builder) (op, error) {
	return &splitOp{axis: int(b.n.Int("axis", 0)), sizes: b.n.Ints("split"), nOut: len(b.n.Outputs)}, nil
}

func (o *splitOp) parts(in []*Tensor) (int, []int, error) {
	x := in[0]
	a, err := normAxis(o.axis, len(x.Shape))
	if err != nil {
		return 0, nil, err
	}
	sizes := o.sizes
	if len(in) > 1 && in[1] != nil {
		if sizes, err = intsOf(in[1], "split"); err != nil {
			return 0, nil, err
		}
	}
	d := x.Shape[a]
	out := make([]int, o.nOut)
	if len(sizes) == 0 {
		// equal parts, the last one smaller when the dim does not divide (opset 18)
		per := (d + o.nOut - 1) / o.nOut
		for i := range out {
			out[i] = max(0, min(per, d-i*per))
		}
		return a, out, nil
	}
	if len(sizes) != o.nOut {
		return 0, nil, fmt.Errorf("split %v for %d outputs", sizes, o.nOut)
	}
	total := 0
	for i, s := range sizes {
		out[i] = int(s)
		total += int(s)
	}
	if total != d {
		return 0, nil, fmt.Errorf("split %v does not add up to %d", sizes, d)
	}
	return a, out, nil
}

func (o *splitOp) infer(in []*Tensor) ([]spec, error) {
	a, parts, err := o.parts(in)
	if err != nil {
		return nil, err
	}
	specs := make([]spec, len(parts))
	for i, p := range parts {
		s := append([]int{}, in[0].Shape...)
		s[a] = p
		specs[i] = spec{shape: s, isInt: in[0].IsInt()}
	}
	return specs, nil
}

func (o *splitOp) run(_ *ctx, in, out []*Tensor) error {
	x := in[0]
	a, _ := normAxis(o.axis, len(x.Shape))
	outer := numel(x.Shape[:a])
	inner := numel(x.Shape[a+1:])
	rowIn := x.Shape[a] * inner
	off := 0
	for _, y := range out {
		if y == nil {
			continue
		}
		row := y.Shape[a] * inner
		for i := 0; i < outer; i++ {
			if x.IsInt() {
				copy(y.Ints[i*row:(i+1)*row], x.Ints[i*rowIn+off:])
			} else {
				copy(y.Data[i*row:(i+1)*row], x.Data[i*rowIn+off:])
			}
		}
		off += row
	}
	return nil
}

// sliceOp is Slice (starts, ends, axes, steps as attributes or run-time inputs).
type sliceOp struct {
	starts, ends, axes, steps []int64
	fromInputs                bool
	// the resolved slice of the last input shape (attribute form), and the copy's index buffer
	cacheShape, cacheStart, cacheStep, idx []int
	cacheParams                            []int64 // run-time starts/ends/axes/steps the cache is for
}

// sameParams reports whether the run-time parameter inputs equal the cached ones.
func (o *sliceOp) sameParams(in []*Tensor) bool {
	if !o.fromInputs {
		return true
	}
	j := 0
	for _, t := range in[1:] {
		if t != nil && t.IsInt() {
			for _, v := range t.Ints {
				if j >= len(o.cacheParams) || o.cacheParams[j] != v {
					return false
				}
				j++
			}
		}
		if j >= len(o.cacheParams) || o.cacheParams[j] != -1<<62 {
			return false
		}
		j++
	}
	return j == len(o.cacheParams)
}

func buildSlice(b *builder) (op, error) {
	n := b.n
	o := &sliceOp{starts: n.Ints("starts"), ends: n.Ints("ends"), axes: n.Ints("axes"), steps: n.Ints("steps")}
	o.fromInputs = len(n.Inputs) > 1
	if !o.fromInputs && (o.starts == nil || o.ends == nil) {
		return nil, fmt.Errorf("no starts/ends")
	}
	return o, nil
}

// sliceDims resolves per-dim start and step and the output shape.
func (o *sliceOp) resolve(in []*Tensor) (start, step, shape []int, err error) {
	x := in[0]
	starts, ends, axes, steps := o.starts, o.ends, o.axes, o.steps
	if o.fromInputs {
		get := func(i int, what string) ([]int64, error) {
			if i < len(in) && in[i] != nil {
				return intsOf(in[i], what)
			}
			return nil, nil
		}
		if starts, err = get(1, "starts"); err != nil {
			return
		}
		if ends, err = get(2, "ends"); err != nil {
			return
		}
		if axes, err = get(3, "axes"); err != nil {
			return
		}
		if steps, err = get(4, "steps"); err != nil {
			return
		}
	}
	r := len(x.Shape)
	if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, nil, nil, fmt.Errorf("starts %v, ends %v, axes %v, steps %v differ in length", starts, ends, axes, steps)
	}
	start, step, shape = make([]int, r), make([]int, r), append([]int{}, x.Shape...)
	for i := range step {
		step[i] = 1
	}
	if axes == nil && len(starts) > r {
		return nil, nil, nil, fmt.Errorf("%d starts for rank %d", len(starts), r)
	}
	seen := make([]bool, r)
	for i := range starts {
		a := i
		if axes != nil {
			if a, err = normAxis(int(axes[i]), r); err != nil {
				return
			}
		}
		if seen[a] {
			return nil, nil, nil, fmt.Errorf("axis %d repeated", a)
		}
		seen[a] = true
		s := int64(1)
		if steps != nil {
			s = steps[i]
		}
		if s == 0 {
			return nil, nil, nil, fmt.Errorf("step 0")
		}
		b, _, n := onnx.SliceRange(starts[i], ends[i], s, int64(x.Shape[a]))
		start[a], step[a], shape[a] = int(b), int(s), int(n)
	}
	return start, step, shape, nil
}

func (o *sliceOp) infer(in []*Tensor) ([]spec, error) {
	_, _, shape, err := o.resolve(in)
	if err != nil {
		return nil, err
	}
	return []spec{{shape: shape, isInt: in[0].IsInt()}}, nil
}

func (o *sliceOp) run(_ *ctx, in, out []*Tensor) error {
	var start, step []int
	if slices.Equal(o.cacheShape, in[0].Shape) && o.sameParams(in) {
		start, step = o.cacheStart, o.cacheStep
	} else {
		var err error
		if start, step, _, err = o.resolve(in); err != nil {
			return err
		}
		o.cacheShape, o.cacheStart, o.cacheStep = append(o.cacheShape[:0], in[0].Shape...), start, step
		o.cacheParams = o.cacheParams[:0]
		for _, t := range in[1:] {
			if t != nil && t.IsInt() {
				o.cacheParams = append(o.cacheParams, t.Ints...)
			}
			o.cacheParams = append(o.cacheParams, -1<<62) // separator
		}
	}
	o.idx = stridedCopy(out[0], in[0], start, step, o.idx)
	return nil
}

// stridedCopy copies y[i...] = x[start + i·step ...] for y's shape. It returns its index buffer
// (buf, grown if needed) for reuse.
func stridedCopy(y, x *Tensor, start, step []int, buf []int) []int {
	r := len(y.Shape)
	n := y.Len()
	if n == 0 {
		return buf
	}
	if cap(buf) < 2*r {
		buf = make([]int, 2*r)
	}
	idx, st := buf[:r], buf[r:2*r]
	clear(idx)
	for k, acc := r-1, 1; k >= 0; k-- {
		st[k] = acc
		acc *= x.Shape[k]
	}
	base := 0
	for k := 0; k < r; k++ {
		base += start[k] * st[k]
	}
	last := 1
	if r > 0 {
		last = y.Shape[r-1]
	}
	for i := 0; i < n; i += last {
		src := base
		for k := 0; k < r; k++ {
			src += idx[k] * step[k] * st[k]
		}
		ls := 1
		if r > 0 {
			ls = step[r-1] * st[r-1]
		}
		for t := 0; t < last; t++ {
			if x.IsInt() {
				y.Ints[i+t] = x.Ints[src+t*ls]
			} else {
				y.Data[i+t] = x.Data[src+t*ls]
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
	return buf
}

// gatherOp is Gather along an axis (negative indices count from the end).
type gatherOp struct{ axis int }

func (o *gatherOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("wants data and indices")
	}
	x, idx := in[0], in[1]
	if !idx.IsInt() {
		return nil, fmt.Errorf("indices must be integers")
	}
	a, err := normAxis(o.axis, len(x.Shape))
	if err != nil {
		return nil, err
	}
	shape := append(append(append([]int{}, x.Shape[:a]...), idx.Shape...), x.Shape[a+1:]...)
	return []spec{{shape: shape, isInt: x.IsInt()}}, nil
}

func (o *gatherOp) run(_ *ctx, in, out []*Tensor) error {
	x, idx, y := in[0], in[1], out[0]
	a, _ := normAxis(o.axis, len(x.Shape))
	outer, d, inner := numel(x.Shape[:a]), x.Shape[a], numel(x.Shape[a+1:])
	k := len(idx.Ints)
	for p := 0; p < outer; p++ {
		for j, v := range idx.Ints {
			if v < 0 {
				v += int64(d)
			}
			if v < 0 || v >= int64(d) {
				return fmt.Errorf("index %d out of range for dim %d", idx.Ints[j], d)
			}
			src := (p*d + int(v)) * inner
			dst := (p*k + j) * inner
			if x.IsInt() {
				copy(y.Ints[dst:dst+inner], x.Ints[src:src+inner])
			} else {
				copy(y.Data[dst:dst+inner], x.Data[src:src+inner])
			}
		}
	}
	return nil
}

// shapeOp is Shape (with start/end from opset 15).
type shapeOp struct {
	start, end int
	hasEnd     bool
}

func (o *shapeOp) shapeOnly() {}

func (o *shapeOp) bounds(r int) (int, int) {
	s, e := o.start, r
	if o.hasEnd {
		e = o.end
	}
	if s < 0 {
		s += r
	}
	if e < 0 {
		e += r
	}
	s, e = max(0, min(s, r)), max(0, min(e, r))
	return s, max(s, e)
}

func (o *shapeOp) infer(in []*Tensor) ([]spec, error) {
	s, e := o.bounds(len(in[0].Shape))
	return []spec{{shape: []int{e - s}, isInt: true}}, nil
}

func (o *shapeOp) run(_ *ctx, in, out []*Tensor) error {
	s, e := o.bounds(len(in[0].Shape))
	for i, d := range in[0].Shape[s:e] {
		out[0].Ints[i] = int64(d)
	}
	return nil
}

// sizeOp is Size: the element count.
type sizeOp struct{}

func (o *sizeOp) shapeOnly() {}

func (o *sizeOp) infer(in []*Tensor) ([]spec, error) {
	return []spec{{shape: []int{}, isInt: true}}, nil
}

func (o *sizeOp) run(_ *ctx, in, out []*Tensor) error {
	out[0].Ints[0] = int64(in[0].Len())
	return nil
}

// castOp converts between float and int (and to bool); CastLike takes the type of input 1.
type castOp struct {
	toInt, toBool, toF16, toBF16, like bool
}

func buildCast(b *builder) (op, error) {
	to := b.n.Int("to", 1)
	o := &castOp{}
	switch to {
	case 1, 11: // float, double
	case 10, 16: // float16, bfloat16: held as float32, rounded to their precision
		o.toF16, o.toBF16 = to == 10, to == 16
	case 9:
		o.toInt, o.toBool = true, true
	case 2, 3, 4, 5, 6, 7, 12, 13:
		o.toInt = true
	default:
		return nil, fmt.Errorf("cast to type %d is not supported", to)
	}
	return o, nil
}

func (o *castOp) infer(in []*Tensor) ([]spec, error) {
	toInt := o.toInt
	if o.like {
		if len(in) < 2 || in[1] == nil {
			return nil, fmt.Errorf("CastLike wants 2 inputs")
		}
		toInt = in[1].IsInt()
	}
	return []spec{{shape: in[0].Shape, isInt: toInt}}, nil
}

func (o *castOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	switch {
	case x.IsInt() && y.IsInt():
		for i, v := range x.Ints {
			if o.toBool {
				v = b2i(v != 0)
			}
			y.Ints[i] = v
		}
	case x.IsInt():
		for i, v := range x.Ints {
			y.Data[i] = float32(v)
		}
	case y.IsInt():
		for i, v := range x.Data {
			switch {
			case o.toBool:
				y.Ints[i] = b2i(v != 0)
			case v != v:
				y.Ints[i] = math.MinInt64
			default:
				y.Ints[i] = int64(v)
			}
		}
	default:
		copy(y.Data, x.Data)
		for i, v := range y.Data {
			switch {
			case o.toF16:
				y.Data[i] = roundF16(v)
			case o.toBF16:
				y.Data[i] = roundBF16(v)
			}
		}
	}
	return nil
}

// roundF16 rounds a float32 to the nearest float16 value (ties to even).
func roundF16(v float32) float32 {
	if v != v || math.IsInf(float64(v), 0) {
		return v
	}
	a := math.Abs(float64(v))
	if a >= 65520 {
		return float32(math.Copysign(math.Inf(1), float64(v)))
	}
	var quantum float64
	if a < 6.103515625e-05 {
		quantum = math.Ldexp(1, -24)
	} else {
		_, e := math.Frexp(a)
		quantum = math.Ldexp(1, e-11)
	}
	return float32(math.Copysign(math.RoundToEven(a/quantum)*quantum, float64(v)))
}

// roundBF16 rounds a float32 to bfloat16 precision (ties to even).
func roundBF16(v float32) float32 {
	if v != v {
		return v
	}
	b := math.Float32bits(v)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// constantOfShapeOp fills a tensor of the given shape with one value.
type constantOfShapeOp struct {
	f     float32
	i     int64
	isInt bool
}

func buildConstantOfShape(b *builder) (op, error) {
	o := &constantOfShapeOp{}
	if a, ok := b.n.Attrs["value"]; ok && a.T != nil {
		switch {
		case len(a.T.Floats) > 0:
			o.f = a.T.Floats[0]
		case len(a.T.Ints) > 0:
			o.i, o.isInt = a.T.Ints[0], true
		case a.T.Type.IsInt():
			o.isInt = true
		}
	}
	return o, nil
}

func (o *constantOfShapeOp) infer(in []*Tensor) ([]spec, error) {
	dims, err := intsOf(in[0], "shape")
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("negative dim in %v", dims)
		}
		shape[i] = int(d)
	}
	return []spec{{shape: shape, isInt: o.isInt}}, nil
}

func (o *constantOfShapeOp) run(_ *ctx, _, out []*Tensor) error {
	y := out[0]
	if y.IsInt() {
		for i := range y.Ints {
			y.Ints[i] = o.i
		}
	} else {
		for i := range y.Data {
			y.Data[i] = o.f
		}
	}
	return nil
}

// constantOp is a Constant node import left in the graph (as an output, or sparse).
type constantOp struct{ t *Tensor }

func buildConstant(b *builder) (op, error) {
	a, ok := b.n.Attrs["value"]
	if ok && a.T != nil {
		if t, err := constTensor(a.T); err == nil {
			return &constantOp{t: t}, nil
		} else {
			return nil, err
		}
	}
	for name, a := range b.n.Attrs {
		switch name {
		case "value_float":
			return &constantOp{t: &Tensor{Shape: []int{}, Data: []float32{a.F}}}, nil
		case "value_floats":
			return &constantOp{t: &Tensor{Shape: []int{len(a.Floats)}, Data: append([]float32{}, a.Floats...)}}, nil
		case "value_int":
			return &constantOp{t: &Tensor{Shape: []int{}, Ints: []int64{a.I}}}, nil
		case "value_ints":
			return &constantOp{t: &Tensor{Shape: []int{len(a.Ints)}, Ints: append([]int64{}, a.Ints...)}}, nil
		}
	}
	return nil, fmt.Errorf("Constant without a supported value")
}

func (o *constantOp) infer([]*Tensor) ([]spec, error) {
	return []spec{{shape: o.t.Shape, isInt: o.t.IsInt()}}, nil
}

func (o *constantOp) run(_ *ctx, _, out []*Tensor) error {
	copyTensor(out[0], o.t)
	return nil
}

// expandOp broadcasts input 0 to the shape in input 1.
type expandOp struct{}

func (o *expandOp) infer(in []*Tensor) ([]spec, error) {
	dims, err := intsOf(in[1], "shape")
	if err != nil {
		return nil, err
	}
	target := make([]int, len(dims))
	for i, d := range dims {
		target[i] = int(d)
	}
	shape, err := broadcastShape(in[0].Shape, target)
	if err != nil {
		return nil, err
	}
	return []spec{{shape: shape, isInt: in[0].IsInt()}}, nil
}

func (o *expandOp) run(_ *ctx, in, out []*Tensor) error { return expandInto(in[0], out[0]) }

// tileOp repeats input 0 along each dim by input 1's counts.
type tileOp struct{}

func (o *tileOp) infer(in []*Tensor) ([]spec, error) {
	reps, err := intsOf(in[1], "repeats")
	if err != nil {
		return nil, err
	}
	if len(reps) != len(in[0].Shape) {
		return nil, fmt.Errorf("repeats %v for rank %d", reps, len(in[0].Shape))
	}
	shape := make([]int, len(reps))
	for i, r := range reps {
		if r < 0 {
			return nil, fmt.Errorf("negative repeat")
		}
		shape[i] = in[0].Shape[i] * int(r)
	}
	return []spec{{shape: shape, isInt: in[0].IsInt()}}, nil
}

func (o *tileOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	r := len(y.Shape)
	st := strides(x.Shape)
	idx := make([]int, r)
	for i := 0; i < y.Len(); i++ {
		src := 0
		for k := 0; k < r; k++ {
			src += (idx[k] % x.Shape[k]) * st[k]
		}
		if x.IsInt() {
			y.Ints[i] = x.Ints[src]
		} else {
			y.Data[i] = x.Data[src]
		}
		for k := r - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < y.Shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return nil
}

// rangeOp is Range(start, limit, delta).
type rangeOp struct{}

func scalarOf(t *Tensor) (float64, error) {
	if t == nil || t.Len() != 1 {
		return 0, fmt.Errorf("wants scalars")
	}
	if t.IsInt() {
		return float64(t.Ints[0]), nil
	}
	return float64(t.Data[0]), nil
}

func (o *rangeOp) params(in []*Tensor) (start, delta float64, n int, err error) {
	if len(in) != 3 {
		return 0, 0, 0, fmt.Errorf("wants start, limit, delta")
	}
	var limit float64
	if start, err = scalarOf(in[0]); err != nil {
		return
	}
	if limit, err = scalarOf(in[1]); err != nil {
		return
	}
	if delta, err = scalarOf(in[2]); err != nil {
		return
	}
	if delta == 0 {
		return 0, 0, 0, fmt.Errorf("delta 0")
	}
	n = max(0, int(math.Ceil((limit-start)/delta)))
	return
}

func (o *rangeOp) infer(in []*Tensor) ([]spec, error) {
	_, _, n, err := o.params(in)
	if err != nil {
		return nil, err
	}
	return []spec{{shape: []int{n}, isInt: in[0].IsInt()}}, nil
}

func (o *rangeOp) run(_ *ctx, in, out []*Tensor) error {
	start, delta, _, err := o.params(in)
	if err != nil {
		return err
	}
	y := out[0]
	if y.IsInt() {
		for i := range y.Ints {
			y.Ints[i] = int64(start) + int64(i)*int64(delta)
		}
	} else {
		for i := range y.Data {
			y.Data[i] = float32(start + float64(i)*delta)
		}
	}
	return nil
}

// whereOp selects x where cond, else y, all broadcast.
type whereOp struct{}

func (o *whereOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 3 || in[0] == nil || in[1] == nil || in[2] == nil || !in[0].IsInt() || in[1].IsInt() != in[2].IsInt() {
		return nil, fmt.Errorf("wants a bool condition and two inputs of one type")
	}
	s, err := broadcastShape(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	if s, err = broadcastShape(s, in[2].Shape); err != nil {
		return nil, err
	}
	return []spec{{shape: s, isInt: in[1].IsInt()}}, nil
}

func (o *whereOp) run(_ *ctx, in, out []*Tensor) error {
	y := out[0]
	r := len(y.Shape)
	var st [3][]int
	for k := 0; k < 3; k++ {
		st[k] = bcastStrides(in[k].Shape, y.Shape)
	}
	idx := make([]int, r)
	for i := 0; i < y.Len(); i++ {
		var off [3]int
		for k := 0; k < 3; k++ {
			for d := 0; d < r; d++ {
				off[k] += idx[d] * st[k][d]
			}
		}
		src := in[2]
		at := off[2]
		if in[0].Ints[off[0]] != 0 {
			src, at = in[1], off[1]
		}
		if y.IsInt() {
			y.Ints[i] = src.Ints[at]
		} else {
			y.Data[i] = src.Data[at]
		}
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < y.Shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return nil
}

// bcastStrides gives the strides of shape s over the dims of out (0 where broadcast).
func bcastStrides(s, out []int) []int {
	r := len(out)
	st := make([]int, r)
	n := 1
	for i := len(s) - 1; i >= 0; i-- {
		j := r - len(s) + i
		if s[i] != 1 {
			st[j] = n
		}
		n *= s[i]
	}
	return st
}

// depthSpaceOp is DepthToSpace (DCR or CRD) or SpaceToDepth.
type depthSpaceOp struct {
	toSpace, crd bool
	block        int
}

func (o *depthSpaceOp) infer(in []*Tensor) ([]spec, error) {
	x := in[0]
	b := o.block
	if len(x.Shape) != 4 || b < 1 {
		return nil, fmt.Errorf("wants NCHW input and blocksize ≥ 1")
	}
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if o.toSpace {
		if c%(b*b) != 0 {
			return nil, fmt.Errorf("%d channels do not divide by %d", c, b*b)
		}
		return []spec{{shape: []int{n, c / (b * b), h * b, w * b}, isInt: x.IsInt()}}, nil
	}
	if h%b != 0 || w%b != 0 {
		return nil, fmt.Errorf("%dx%d does not divide by %d", h, w, b)
	}
	return []spec{{shape: []int{n, c * b * b, h / b, w / b}, isInt: x.IsInt()}}, nil
}

func (o *depthSpaceOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	b := o.block
	if o.toSpace {
		n, c, h, w := y.Shape[0], y.Shape[1], x.Shape[2], x.Shape[3]
		for i := 0; i < n; i++ {
			for ch := 0; ch < c; ch++ {
				for yy := 0; yy < h*b; yy++ {
					for xx := 0; xx < w*b; xx++ {
						by, bx := yy%b, xx%b
						var sc int
						if o.crd {
							sc = ch*b*b + by*b + bx
						} else {
							sc = (by*b+bx)*c + ch
						}
						src := ((i*c*b*b+sc)*h+yy/b)*w + xx/b
						dst := ((i*c+ch)*h*b+yy)*w*b + xx
						y.Data[dst] = x.Data[src]
					}
				}
			}
		}
		return nil
	}
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			for yy := 0; yy < h; yy++ {
				for xx := 0; xx < w; xx++ {
					by, bx := yy%b, xx%b
					dc := (by*b+bx)*c + ch
					dst := ((i*c*b*b+dc)*(h/b)+yy/b)*(w/b) + xx/b
					y.Data[dst] = x.Data[((i*c+ch)*h+yy)*w+xx]
				}
			}
		}
	}
	return nil
}

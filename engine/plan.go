package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// plan is how a graph runs for one set of input shapes (and kept values): every value's tensor
// bound to storage that later runs reuse, the steps left to run after constant folding, and the
// scratch memory of the kernels.
type plan struct {
	inShapes [][]int
	inInt    []bool
	keep     []int
	vals     []*Tensor
	inputs   []*Tensor // the storage graph inputs are copied into
	steps    []planStep
	outs     []*Tensor // graph outputs, then kept values
	ctx      ctx
}

type planStep struct {
	st      *step
	in, out []*Tensor
	// check: the step reads int values computed at run time from data, so its output shapes
	// may change between runs with the same input shapes; they are inferred and compared.
	check bool
}

// exec runs the graph on inputs (in graph input order) and returns the outputs followed by the
// kept values, owned by the plan.
func (g *graph) exec(p *Program, inputs []*Tensor, keep []int) ([]*Tensor, error) {
	for i, t := range inputs {
		if err := g.checkInput(i, t); err != nil {
			return nil, err
		}
	}
	pl := g.last
	if pl == nil || !pl.matches(inputs, keep) {
		key := planKey(inputs, keep)
		pl = g.plans[key]
		if pl == nil {
			var err error
			pl, err = g.makePlan(p, inputs, keep)
			if err != nil {
				return nil, err
			}
			g.plans[key] = pl
		}
		g.last = pl
	}
	for i, t := range inputs {
		dst := pl.inputs[i]
		if dst == nil {
			continue
		}
		if t.IsInt() {
			copy(dst.Ints, t.Ints)
		} else {
			copy(dst.Data, t.Data)
		}
	}
	for i := range pl.steps {
		ps := &pl.steps[i]
		if ps.check {
			specs, err := ps.st.op.infer(ps.in)
			if err != nil {
				return nil, ps.st.errorf(err)
			}
			for j, o := range ps.out {
				if o != nil && j < len(specs) && !slices.Equal(o.Shape, specs[j].shape) {
					outs, _, err := g.runDynamic(p, inputs, keep)
					return outs, err
				}
			}
		}
		if err := ps.st.op.run(&pl.ctx, ps.in, ps.out); err != nil {
			return nil, ps.st.errorf(err)
		}
	}
	return pl.outs, nil
}

func (g *graph) checkInput(i int, t *Tensor) error {
	name := g.names[g.inIDs[i]]
	if t == nil {
		return fmt.Errorf("engine: input %q is nil", name)
	}
	n := numel(t.Shape)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("engine: input %q has a negative dim in shape %v", name, t.Shape)
		}
	}
	if t.IsInt() && len(t.Ints) < n || !t.IsInt() && len(t.Data) < n {
		return fmt.Errorf("engine: input %q of shape %v has too few values", name, t.Shape)
	}
	if want := g.declared[i]; want != nil {
		if len(want) != len(t.Shape) {
			return fmt.Errorf("engine: input %q has shape %v, the model wants rank %d %v", name, t.Shape, len(want), dimsString(want))
		}
		for j, d := range want {
			if d >= 0 && d != t.Shape[j] {
				return fmt.Errorf("engine: input %q has shape %v, the model wants %v", name, t.Shape, dimsString(want))
			}
		}
	}
	return nil
}

func dimsString(d []int) string {
	s := make([]string, len(d))
	for i, v := range d {
		if v < 0 {
			s[i] = "?"
		} else {
			s[i] = strconv.Itoa(v)
		}
	}
	return "[" + strings.Join(s, "x") + "]"
}

func (pl *plan) matches(inputs []*Tensor, keep []int) bool {
	if len(keep) != len(pl.keep) || len(inputs) != len(pl.inShapes) {
		return false
	}
	for i, k := range keep {
		if pl.keep[i] != k {
			return false
		}
	}
	for i, t := range inputs {
		if t.IsInt() != pl.inInt[i] || !slices.Equal(t.Shape, pl.inShapes[i]) {
			return false
		}
	}
	return true
}

func planKey(inputs []*Tensor, keep []int) string {
	var b strings.Builder
	for _, t := range inputs {
		if t.IsInt() {
			b.WriteByte('i')
		}
		for _, d := range t.Shape {
			b.WriteString(strconv.Itoa(d))
			b.WriteByte(',')
		}
		b.WriteByte(';')
	}
	for _, k := range keep {
		b.WriteString(strconv.Itoa(k))
		b.WriteByte(',')
	}
	return b.String()
}

// copyIn copies a graph input into fresh storage with the kernels' slack.
func copyIn(t *Tensor) *Tensor {
	n := numel(t.Shape)
	c := &Tensor{Shape: append([]int{}, t.Shape...)}
	if t.IsInt() {
		c.Ints = append(make([]int64, 0, n), t.Ints[:n]...)
	} else {
		c.Data = newFloats(n)
		copy(c.Data, t.Data[:n])
	}
	return c
}

// allocFor makes a tensor of a spec with fresh storage.
func allocFor(s spec) *Tensor {
	t := &Tensor{Shape: s.shape}
	if s.isInt {
		t.Ints = make([]int64, numel(s.shape))
	} else {
		t.Data = newFloats(numel(s.shape))
	}
	return t
}

// dynResult is what a run without a plan learns: every value's tensor and which are constant
// for the given input shapes.
type dynResult struct {
	vals   []*Tensor
	static []bool
	specs  [][]spec // per step
}

// runDynamic runs the graph allocating every value, which plans are made from (and which serves
// runs whose shapes depend on data). It returns the outputs and kept values.
//
// A float value's storage is dropped once its last reader has run (the outputs, the kept values
// and the constants stay): a plan needs only the shapes of the others, and keeping them all made
// the first run at each batch size hold the whole network's activations at once (ResNet-50 at
// 224×224: about 80 MB an image, beside the plan's own buffers).
func (g *graph) runDynamic(p *Program, inputs []*Tensor, keep []int) ([]*Tensor, *dynResult, error) {
	n := len(g.names)
	r := &dynResult{vals: make([]*Tensor, n), static: make([]bool, n), specs: make([][]spec, len(g.steps))}
	readers := make([]int, n) // steps still to read each value; pinned ones never reach 0
	for _, s := range g.steps {
		for _, i := range s.in {
			if i >= 0 {
				readers[i]++
			}
		}
	}
	for _, o := range g.outIDs {
		readers[o] = -1
	}
	for _, k := range keep {
		readers[k] = -1
	}
	for i, c := range g.consts {
		if c != nil {
			r.vals[i], r.static[i] = c, true
		}
	}
	for i, id := range g.inIDs {
		r.vals[id], r.static[id] = copyIn(inputs[i]), false
	}
	c := &ctx{pool: p.pool, threads: p.threads}
	ins := []*Tensor{}
	for si, s := range g.steps {
		ins = ins[:0]
		allStatic := true
		for _, i := range s.in {
			var t *Tensor
			if i >= 0 {
				t = r.vals[i]
				if t == nil {
					return nil, nil, s.errorf(fmt.Errorf("input %q is not available", g.names[i]))
				}
				allStatic = allStatic && r.static[i]
			}
			ins = append(ins, t)
		}
		specs, err := s.op.infer(ins)
		if err != nil {
			return nil, nil, s.errorf(err)
		}
		if len(specs) < len(s.out) {
			specs = append(specs, make([]spec, len(s.out)-len(specs))...)
		}
		r.specs[si] = specs
		if _, ok := s.op.(shapeOfOp); ok {
			allStatic = true
		}
		outs := make([]*Tensor, len(s.out))
		if _, ok := s.op.(viewOp); ok {
			outs[0] = &Tensor{Shape: specs[0].shape, Data: ins[0].Data, Ints: ins[0].Ints}
			if ins[0].Data != nil {
				outs[0].Data = ins[0].Data[:numel(specs[0].shape)]
			} else {
				outs[0].Ints = ins[0].Ints[:numel(specs[0].shape)]
			}
		} else {
			for j := range s.out {
				outs[j] = allocFor(specs[j])
			}
			if so, ok := s.op.(scratchOp); ok {
				per, shared := so.scratch(ins, p.threads)
				c.scratch = make([][]float32, p.threads)
				for w := range c.scratch {
					c.scratch[w] = newFloats(per)
				}
				c.shared = newFloats(shared)
			}
			if err := s.op.run(c, ins, outs); err != nil {
				return nil, nil, s.errorf(err)
			}
			c.scratch, c.shared = nil, nil
		}
		for j, o := range s.out {
			if o >= 0 {
				r.vals[o], r.static[o] = outs[j], allStatic
				if readers[o] == 0 && !allStatic && outs[j].Data != nil {
					r.vals[o] = &Tensor{Shape: outs[j].Shape} // never read
				}
			}
		}
		for _, i := range s.in {
			if i < 0 || readers[i] < 0 {
				continue
			}
			if readers[i]--; readers[i] == 0 && !r.static[i] && r.vals[i].Data != nil {
				// Read for the last time: only its shape is left to plan with (a view of it
				// keeps the storage alive as long as the view is read).
				r.vals[i] = &Tensor{Shape: r.vals[i].Shape}
			}
		}
	}
	res := make([]*Tensor, 0, len(g.outIDs)+len(keep))
	for _, o := range g.outIDs {
		res = append(res, r.vals[o])
	}
	for _, k := range keep {
		res = append(res, r.vals[k])
	}
	return res, r, nil
}

// shapeOfOp marks ops whose outputs depend only on their inputs' shapes (Shape, Size).
type shapeOfOp interface{ shapeOnly() }

// makePlan runs the graph once without a plan, then binds every value to reusable storage.
func (g *graph) makePlan(p *Program, inputs []*Tensor, keep []int) (*plan, error) {
	_, r, err := g.runDynamic(p, inputs, keep)
	if err != nil {
		return nil, err
	}
	n := len(g.names)
	pl := &plan{keep: append([]int(nil), keep...), vals: make([]*Tensor, n), ctx: ctx{pool: p.pool, threads: p.threads}}
	for _, t := range inputs {
		pl.inShapes = append(pl.inShapes, append([]int{}, t.Shape...))
		pl.inInt = append(pl.inInt, t.IsInt())
	}
	const pinned = 1 << 40
	uses := make([]int, n)
	var dyn []int // steps that run every time
	for si, s := range g.steps {
		static := true
		for _, o := range s.out {
			if o >= 0 && !r.static[o] {
				static = false
			}
		}
		if static {
			continue
		}
		dyn = append(dyn, si)
		for _, i := range s.in {
			if i >= 0 && !r.static[i] {
				uses[i]++
			}
		}
	}
	for _, o := range g.outIDs {
		uses[o] = pinned
	}
	for _, k := range keep {
		uses[k] = pinned
	}

	// Assign storage: buffers are reused once every value living in them has been read for the
	// last time; views share their input's buffer; element-wise ops may write over an input
	// nothing reads afterwards.
	type buffer struct {
		size  int
		isInt bool
		refs  int
		free  bool
	}
	var bufs []*buffer
	root := make([]int, n)
	for i := range root {
		root[i] = -1
	}
	alloc := func(size int, isInt bool) int {
		best := -1
		for i, b := range bufs {
			if !b.free || b.isInt != isInt {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			bb := bufs[best]
			switch {
			case b.size >= size && (bb.size < size || b.size < bb.size):
				best = i
			case bb.size < size && b.size > bb.size:
				best = i
			}
		}
		if best >= 0 {
			b := bufs[best]
			b.free = false
			b.size = max(b.size, size)
			return best
		}
		bufs = append(bufs, &buffer{size: size, isInt: isInt})
		return len(bufs) - 1
	}
	release := func(v int) {
		if b := root[v]; b >= 0 {
			bufs[b].refs--
			if bufs[b].refs == 0 {
				bufs[b].free = true
			}
		}
	}
	for _, id := range g.inIDs {
		t := r.vals[id]
		root[id] = alloc(t.Len(), t.IsInt())
		bufs[root[id]].refs = uses[id]
		if uses[id] == 0 {
			bufs[root[id]].free = true
		}
	}
	for _, si := range dyn {
		s := g.steps[si]
		specs := r.specs[si]
		_, isView := s.op.(viewOp)
		ip, _ := s.op.(inPlaceOp)
		for j, o := range s.out {
			if o < 0 || r.static[o] {
				continue
			}
			sp := specs[j]
			if j == 0 && isView {
				root[o] = root[s.in[0]]
				if root[o] >= 0 {
					bufs[root[o]].refs += uses[o]
				}
				continue
			}
			if j == 0 && ip != nil && ip.inPlace() && len(s.in) > 0 && s.in[0] >= 0 {
				in0 := s.in[0]
				b := root[in0]
				if b >= 0 && bufs[b].refs == 1 && !r.static[in0] && r.vals[in0].IsInt() == sp.isInt &&
					r.vals[in0].Len() == numel(sp.shape) {
					shared := false
					for k, i := range s.in {
						if k > 0 && i >= 0 && root[i] == b {
							shared = true
						}
					}
					if !shared {
						root[o] = b
						bufs[b].refs += uses[o]
						continue
					}
				}
			}
			root[o] = alloc(numel(sp.shape), sp.isInt)
			bufs[root[o]].refs = uses[o]
		}
		for _, i := range s.in {
			if i >= 0 && !r.static[i] {
				release(i)
			}
		}
		for j, o := range s.out {
			if o >= 0 && !r.static[o] && uses[o] == 0 && !(j == 0 && isView) && root[o] >= 0 && bufs[root[o]].refs == 0 {
				bufs[root[o]].free = true
			}
		}
	}
	// allocate and bind
	fstore := make([][]float32, len(bufs))
	istore := make([][]int64, len(bufs))
	for i, b := range bufs {
		if b.isInt {
			istore[i] = make([]int64, b.size)
		} else {
			fstore[i] = newFloats(b.size)
		}
	}
	isViewOut := make([]bool, n)
	for _, si := range dyn {
		s := g.steps[si]
		if _, ok := s.op.(viewOp); ok && s.out[0] >= 0 {
			isViewOut[s.out[0]] = true
		}
	}
	for v := 0; v < n; v++ {
		t := r.vals[v]
		if t == nil || isViewOut[v] {
			continue
		}
		if r.static[v] {
			pl.vals[v] = t
			continue
		}
		b := root[v]
		if b < 0 {
			return nil, fmt.Errorf("engine: internal error: value %q has no storage", g.names[v])
		}
		bt := &Tensor{Shape: t.Shape}
		if t.IsInt() {
			bt.Ints = istore[b][:t.Len()]
		} else {
			bt.Data = fstore[b][:t.Len()]
		}
		pl.vals[v] = bt
	}
	for _, si := range dyn { // views, in step order so their inputs are bound first
		s := g.steps[si]
		if o := s.out[0]; o >= 0 && isViewOut[o] {
			src, t := pl.vals[s.in[0]], r.vals[o]
			bt := &Tensor{Shape: t.Shape}
			if src.IsInt() {
				bt.Ints = src.Ints[:t.Len()]
			} else {
				bt.Data = src.Data[:t.Len()]
			}
			pl.vals[o] = bt
		}
	}
	pl.inputs = make([]*Tensor, len(g.inIDs))
	for i, id := range g.inIDs {
		pl.inputs[i] = pl.vals[id]
	}
	// steps
	per, shared := 0, 0
	for _, si := range dyn {
		s := g.steps[si]
		_, isView := s.op.(viewOp)
		ps := planStep{st: s, in: make([]*Tensor, len(s.in)), out: make([]*Tensor, len(s.out))}
		for j, i := range s.in {
			if i >= 0 {
				ps.in[j] = pl.vals[i]
				if !r.static[i] && pl.vals[i].IsInt() {
					ps.check = true
				}
			}
		}
		for j, o := range s.out {
			if o >= 0 {
				ps.out[j] = pl.vals[o]
			}
		}
		if isView && !ps.check {
			continue // bound to its input's storage once and for all
		}
		if so, ok := s.op.(scratchOp); ok {
			a, b := so.scratch(ps.in, p.threads)
			per, shared = max(per, a), max(shared, b)
		}
		pl.steps = append(pl.steps, ps)
	}
	pl.ctx.scratch = make([][]float32, p.threads)
	for w := range pl.ctx.scratch {
		pl.ctx.scratch[w] = newFloats(per)
	}
	pl.ctx.shared = newFloats(shared)
	for _, o := range g.outIDs {
		pl.outs = append(pl.outs, pl.vals[o])
	}
	for _, k := range keep {
		pl.outs = append(pl.outs, pl.vals[k])
	}
	return pl, nil
}

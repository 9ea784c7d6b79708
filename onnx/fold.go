package onnx

import "slices"

// This file is chanopt's one integer constant evaluator. Shape inference runs it on every node to
// follow small integer tensors (shapes, Reshape targets, Pad amounts, Slice bounds), symbolic dims
// included; import runs it on nodes whose inputs are all constants and replaces them by
// initializers; InferOptions.Fold replaces the nodes whose values inference found fully known.

// maxFoldElements bounds the integer tensors the evaluator follows: shape arithmetic, not data.
const maxFoldElements = 4096

// symInt is one element of an integer tensor as inference knows it: a known value, or else the
// symbol of the dynamic dim it equals (a batch N flowing through Shape → Gather → Concat), or
// nothing.
type symInt struct {
	v     int64
	sym   string
	known bool
}

func known(v int64) symInt { return symInt{v: v, known: true} }

// symOf is a dim as an element: its size, or its symbol.
func symOf(d Dim) symInt {
	if d.Known() {
		return known(d.Size)
	}
	return symInt{sym: d.Param}
}

// dim is the element as a Dim, the way InferResult.IntValues and Reshape targets carry it: a known
// value keeps its size (even a negative one, such as a Reshape's -1), a symbol its name.
func (e symInt) dim() Dim {
	if e.known {
		return Dim{Size: e.v}
	}
	return Dim{Size: -1, Param: e.sym}
}

// intTensor is a small integer tensor whose elements the evaluator knows, each fully or in part.
type intTensor struct {
	dims []int64
	el   []symInt
}

func intTensorOf(t *Tensor) *intTensor {
	v := &intTensor{dims: t.Dims, el: make([]symInt, len(t.Ints))}
	for i, x := range t.Ints {
		v.el[i] = known(x)
	}
	return v
}

// ints returns the values when every element is known.
func (v *intTensor) ints() ([]int64, bool) {
	out := make([]int64, len(v.el))
	for i, e := range v.el {
		if !e.known {
			return nil, false
		}
		out[i] = e.v
	}
	return out, true
}

func (v *intTensor) dimList() []Dim {
	out := make([]Dim, len(v.el))
	for i, e := range v.el {
		out[i] = e.dim()
	}
	return out
}

// shape reads the value as a shape: its known non-negative elements as sizes, its symbols as
// symbolic dims, anything else (a Reshape's -1 included) as unknown.
func (v *intTensor) shape() Shape {
	out := make(Shape, len(v.el))
	for i, e := range v.el {
		switch {
		case e.known && e.v >= 0:
			out[i] = D(e.v)
		case !e.known && e.sym != "":
			out[i] = Dim{Size: -1, Param: e.sym}
		default:
			out[i] = Unknown
		}
	}
	return out
}

// sizeOf is the element count of dims, or -1 when a dim is negative or the count passes
// maxFoldElements.
func sizeOf(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		if d < 0 || (d > 0 && n > maxFoldElements/d) {
			return -1
		}
		n *= d
	}
	return n
}

func numElements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

// seedValues records the value of every small integer initializer.
func (st *inferState) seedValues() {
	for name, t := range st.g.Inits {
		if t.Ints != nil && sizeOf(t.Dims) == int64(len(t.Ints)) {
			st.vals[name] = intTensorOf(t)
		}
	}
}

// evalInts computes the integer value of n's first output from what is known of its inputs, given
// the output's inferred shape, or returns nil when it cannot (an op it does not evaluate, inputs
// whose values are unknown, or a result too large to follow).
func (st *inferState) evalInts(n *Node, out Shape) (res *intTensor) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil
	}
	defer func() {
		if res != nil && sizeOf(res.dims) != int64(len(res.el)) {
			res = nil
		}
	}()
	x := st.vals[n.Input(0)]
	// outDims are the dims of a value whose elements are those of its input in the same order.
	outDims := func() []int64 {
		if out.Static() {
			return out.Sizes()
		}
		if len(out) == 1 && x != nil {
			return []int64{int64(len(x.el))}
		}
		return nil
	}
	switch n.OpType {
	case "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten":
		if x == nil {
			return nil
		}
		return &intTensor{dims: outDims(), el: x.el}
	case "Cast":
		if !DataType(n.Int("to", 0)).IsInt() {
			return nil
		}
		if x != nil {
			return &intTensor{dims: outDims(), el: x.el}
		}
		// A float constant cast to an integer type: ONNX truncates toward zero, as Go does.
		if t, ok := st.g.Inits[n.Input(0)]; ok && t.Floats != nil && sizeOf(t.Dims) == int64(len(t.Floats)) {
			v := &intTensor{dims: t.Dims, el: make([]symInt, len(t.Floats))}
			for i, f := range t.Floats {
				v.el[i] = known(int64(f))
			}
			return v
		}
	case "Shape":
		s, err := st.shape(n.Input(0))
		if err != nil {
			return nil
		}
		start, end := shapeRange(n, int64(len(s)))
		v := &intTensor{dims: []int64{end - start}}
		for _, d := range s[start:end] {
			v.el = append(v.el, symOf(d))
		}
		return v
	case "Size":
		s, err := st.shape(n.Input(0))
		if err != nil {
			return nil
		}
		return &intTensor{dims: []int64{}, el: []symInt{symOf(prodDims(s))}}
	case "Neg", "Abs":
		if x == nil {
			return nil
		}
		v := &intTensor{dims: x.dims, el: make([]symInt, len(x.el))}
		for i, e := range x.el {
			switch {
			case e.known && (n.OpType == "Neg" || e.v < 0):
				v.el[i] = known(-e.v)
			case e.known || (n.OpType == "Abs" && e.sym != ""): // |dim| is the dim
				v.el[i] = e
			}
		}
		return v
	case "Add", "Sub", "Mul", "Div":
		y := st.vals[n.Input(1)]
		if x == nil || y == nil || len(n.Inputs) != 2 {
			return nil
		}
		return broadcastInts(n.OpType, x, y)
	case "ReduceProd":
		// On a 1-D value every reduction is over all of it (an empty axes list means all too,
		// unless noop_with_empty_axes says otherwise).
		if x == nil || len(x.dims) != 1 || n.Int("noop_with_empty_axes", 0) != 0 {
			return nil
		}
		p := int64(1)
		for _, e := range x.el {
			if !e.known {
				if len(x.el) == 1 {
					return &intTensor{dims: outDims(), el: x.el}
				}
				return &intTensor{dims: out.Sizes(), el: []symInt{{}}}
			}
			p *= e.v
		}
		return &intTensor{dims: out.Sizes(), el: []symInt{known(p)}}
	case "Transpose":
		if x == nil {
			return nil
		}
		perm := n.Ints("perm")
		if perm == nil {
			for i := len(x.dims) - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		return transposeInts(x, perm)
	case "Concat":
		var in []*intTensor
		for _, name := range n.Inputs {
			if name == "" {
				continue
			}
			v := st.vals[name]
			if v == nil {
				return nil
			}
			in = append(in, v)
		}
		if len(in) == 0 {
			return nil
		}
		axis, err := normAxis(n.Int("axis", 0), len(in[0].dims))
		if err != nil {
			return nil
		}
		return concatInts(in, axis)
	case "Slice":
		if x == nil {
			return nil
		}
		starts, ok1 := st.ints(n, "starts", 1)
		ends, ok2 := st.ints(n, "ends", 2)
		axes, ok3 := st.ints(n, "axes", 3)
		steps, ok4 := st.ints(n, "steps", 4)
		if !ok1 || !ok2 || (!ok3 && n.Input(3) != "") || (!ok4 && n.Input(4) != "") {
			return nil
		}
		return sliceInts(x, starts, ends, axes, steps)
	case "Gather":
		idx := st.vals[n.Input(1)]
		if x == nil || idx == nil || len(x.dims) != 1 {
			return nil
		}
		if a := n.Int("axis", 0); a != 0 && a != -1 {
			return nil
		}
		v := &intTensor{dims: idx.dims}
		for _, i := range idx.el {
			j := i.v
			if j < 0 {
				j += x.dims[0]
			}
			if !i.known || j < 0 || j >= x.dims[0] {
				return nil
			}
			v.el = append(v.el, x.el[j])
		}
		return v
	case "ConstantOfShape":
		if x == nil {
			return nil
		}
		dims, ok := x.ints()
		a, hasValue := n.Attrs["value"]
		if !ok || !hasValue || a.T == nil || !a.T.Type.IsInt() || len(a.T.Ints) != 1 {
			return nil
		}
		count := sizeOf(dims)
		if count < 0 {
			return nil
		}
		v := &intTensor{dims: dims, el: make([]symInt, count)}
		for i := range v.el {
			v.el[i] = known(a.T.Ints[0])
		}
		return v
	}
	return nil
}

// shapeRange is the [start, end) of the dims a Shape node returns (opset 15's start and end).
func shapeRange(n *Node, rank int64) (start, end int64) {
	start, end = n.Int("start", 0), n.Int("end", rank)
	if start < 0 {
		start += rank
	}
	if end < 0 {
		end += rank
	}
	start, end = clamp(start, 0, rank), clamp(end, 0, rank)
	return start, max(start, end)
}

// strides returns row-major strides.
func strides(dims []int64) []int64 {
	s := make([]int64, len(dims))
	acc := int64(1)
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

// arith is integer Add, Sub, Mul or Div on two elements. x·1, x/1, x+0, x−0 (and 1·x, 0+x) keep
// a symbol, which lets a dynamic batch survive arithmetic chains.
func arith(op string, a, b symInt) (symInt, bool) {
	if a.known && b.known {
		switch op {
		case "Add":
			return known(a.v + b.v), true
		case "Sub":
			return known(a.v - b.v), true
		case "Mul":
			return known(a.v * b.v), true
		}
		if b.v == 0 {
			return symInt{}, false
		}
		return known(a.v / b.v), true // ONNX integer Div truncates toward zero, as Go's does
	}
	switch {
	case b.known && b.v == 1 && (op == "Mul" || op == "Div"), b.known && b.v == 0 && (op == "Add" || op == "Sub"):
		return a, true
	case a.known && ((a.v == 1 && op == "Mul") || (a.v == 0 && op == "Add")):
		return b, true
	}
	return symInt{}, true
}

func broadcastInts(op string, a, b *intTensor) *intTensor {
	rank := max(len(a.dims), len(b.dims))
	pad := func(d []int64) []int64 {
		out := make([]int64, rank)
		for i := range out {
			out[i] = 1
		}
		copy(out[rank-len(d):], d)
		return out
	}
	ad, bd := pad(a.dims), pad(b.dims)
	dims := make([]int64, rank)
	for i := range dims {
		dims[i] = ad[i]
		if bd[i] != 1 {
			if ad[i] != 1 && ad[i] != bd[i] {
				return nil
			}
			dims[i] = bd[i]
		}
	}
	total := sizeOf(dims)
	if total < 0 {
		return nil
	}
	as, bs, os := strides(ad), strides(bd), strides(dims)
	out := &intTensor{dims: dims, el: make([]symInt, total)}
	for flat := range out.el {
		var ai, bi int64
		for i := range dims {
			c := int64(flat) / os[i] % dims[i]
			if ad[i] != 1 {
				ai += c * as[i]
			}
			if bd[i] != 1 {
				bi += c * bs[i]
			}
		}
		e, ok := arith(op, a.el[ai], b.el[bi])
		if !ok {
			return nil
		}
		out.el[flat] = e
	}
	return out
}

func transposeInts(x *intTensor, perm []int64) *intTensor {
	if len(perm) != len(x.dims) {
		return nil
	}
	dims := make([]int64, len(perm))
	seen := make([]bool, len(perm))
	for i, p := range perm {
		if p < 0 || p >= int64(len(x.dims)) || seen[p] {
			return nil
		}
		seen[p] = true
		dims[i] = x.dims[p]
	}
	xs, os := strides(x.dims), strides(dims)
	out := &intTensor{dims: dims, el: make([]symInt, len(x.el))}
	for flat := range out.el {
		var src int64
		for i := range dims {
			c := int64(flat) / os[i] % dims[i]
			src += c * xs[perm[i]]
		}
		out.el[flat] = x.el[src]
	}
	return out
}

func concatInts(in []*intTensor, axis int) *intTensor {
	dims := append([]int64{}, in[0].dims...)
	dims[axis] = 0
	for _, t := range in {
		if len(t.dims) != len(dims) {
			return nil
		}
		for i := range dims {
			if i != axis && t.dims[i] != dims[i] {
				return nil
			}
		}
		dims[axis] += t.dims[axis]
	}
	outer := numElements(dims[:axis])
	out := &intTensor{dims: dims}
	for o := int64(0); o < outer; o++ {
		for _, t := range in {
			inner := numElements(t.dims[axis:])
			out.el = append(out.el, t.el[o*inner:(o+1)*inner]...)
		}
	}
	return out
}

func sliceInts(x *intTensor, starts, ends, axes, steps []int64) *intTensor {
	rank := len(x.dims)
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil
	}
	begin, step, count := make([]int64, rank), make([]int64, rank), append([]int64{}, x.dims...)
	for i := range step {
		step[i] = 1
	}
	for i := range starts {
		ax := i
		if axes != nil {
			var err error
			if ax, err = normAxis(axes[i], rank); err != nil {
				return nil
			}
		}
		if ax >= rank {
			return nil
		}
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil
		}
		b, _, c := SliceRange(starts[i], ends[i], st, x.dims[ax])
		begin[ax], step[ax], count[ax] = b, st, c
	}
	xs, os := strides(x.dims), strides(count)
	out := &intTensor{dims: count, el: make([]symInt, numElements(count))}
	for flat := range out.el {
		var src int64
		for i := range count {
			c := int64(flat) / os[i] % count[i]
			src += (begin[i] + c*step[i]) * xs[i]
		}
		out.el[flat] = x.el[src]
	}
	return out
}

// foldConstantChains evaluates, at import, nodes whose inputs are all small integer constants —
// the ConstantOfShape → Concat → Reshape → Slice → Transpose → Cast chains exporters write for Pad
// amounts and Reshape targets — and replaces them by initializers, so the arguments they feed
// become constants that import lifts into attributes. Shape and Size fold only on initializers
// (a graph input's declared shape is not fixed yet). It reports whether it folded anything.
func foldConstantChains(g *Graph) bool {
	st := &inferState{g: g, vals: map[string]*intTensor{}, fvals: map[string][]float32{}}
	st.seedValues()
	folded := false
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		if !st.allInputsConstant(n) {
			kept = append(kept, n)
			continue
		}
		outs, err := st.infer(n)
		if err != nil || len(outs) != 1 || !outs[0].Shape.Static() || !st.toInit(n, outs[0].Type, st.evalInts(n, outs[0].Shape)) {
			kept = append(kept, n)
			continue
		}
		folded = true
	}
	g.Nodes = kept
	return folded
}

// allInputsConstant reports whether import may fold n: one output that is not a graph output, and
// every input an integer constant the evaluator holds (or, for Shape, Size and Cast, any
// initializer).
func (st *inferState) allInputsConstant(n *Node) bool {
	if n.Domain != "" || len(n.Outputs) != 1 || st.g.IsOutput(n.Outputs[0]) || len(n.Inputs) == 0 || n.Inputs[0] == "" {
		return false
	}
	for i, name := range n.Inputs {
		if name == "" {
			continue
		}
		if _, ok := st.vals[name]; ok {
			continue
		}
		if t, isInit := st.g.Inits[name]; isInit && i == 0 && (n.OpType == "Shape" || n.OpType == "Size" ||
			n.OpType == "Cast" && t.NumElements() <= maxFoldElements) {
			continue
		}
		return false
	}
	return true
}

// fold replaces nodes whose integer outputs inference found fully known by initializers. It
// reports whether it changed the graph.
func (st *inferState) fold(m *Model) bool {
	g := m.Graph
	changed := false
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		if n.OpType == "Constant" || len(n.Outputs) != 1 || g.IsOutput(n.Outputs[0]) {
			kept = append(kept, n)
			continue
		}
		v, val := st.vals[n.Outputs[0]], g.Values[n.Outputs[0]]
		if v == nil || val == nil || !val.Type.IsInt() || !val.Shape.Static() || !slices.Equal(val.Shape.Sizes(), v.dims) ||
			!st.toInit(n, val.Type, v) {
			kept = append(kept, n)
			continue
		}
		changed = true
	}
	g.Nodes = kept
	if changed {
		removeDeadNodes(g)
	}
	return changed
}

// toInit makes n's output the initializer holding v when every element of v is known, and
// reports whether it did.
func (st *inferState) toInit(n *Node, typ DataType, v *intTensor) bool {
	if v == nil {
		return false
	}
	ints, allKnown := v.ints()
	if !allKnown {
		return false
	}
	if !typ.IsInt() {
		typ = Int64
	}
	name := n.Outputs[0]
	t := &Tensor{Name: name, Type: typ, Dims: append([]int64{}, v.dims...), Ints: ints}
	st.g.Inits[name] = t
	st.g.InitOrder = append(st.g.InitOrder, name)
	st.g.Values[name] = &Value{Name: name, Type: t.Type, Shape: t.Shape()}
	st.vals[name] = v
	return true
}

// Needed marks the nodes of g (topologically ordered) that the values outs depend on, and returns
// every value those nodes read (subgraphs' outer reads included) together with outs.
func Needed(g *Graph, outs ...string) (nodes []bool, live map[string]bool) {
	live = map[string]bool{}
	for _, o := range outs {
		live[o] = true
	}
	nodes = make([]bool, len(g.Nodes))
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		for _, o := range n.Outputs {
			if live[o] {
				nodes[i] = true
			}
		}
		if nodes[i] {
			for _, in := range nodeReads(n) {
				live[in] = true
			}
		}
	}
	return nodes, live
}

// removeDeadNodes drops nodes none of whose outputs reach a graph output.
func removeDeadNodes(g *Graph) {
	keep, _ := Needed(g, g.Outputs...)
	kept := g.Nodes[:0]
	for i, n := range g.Nodes {
		if keep[i] {
			kept = append(kept, n)
		} else {
			for _, o := range n.Outputs {
				if _, isInit := g.Inits[o]; !isInit {
					delete(g.Values, o)
				}
			}
		}
	}
	g.Nodes = kept
}

// RemoveDeadNodes drops nodes that do not contribute to any graph output, then the initializers left
// unused.
func RemoveDeadNodes(g *Graph) {
	removeDeadNodes(g)
	RemoveDeadInitializers(g)
}

package onnx

import (
	"fmt"
	"sort"
	"strings"
)

// InferOptions controls shape inference.
type InferOptions struct {
	// Inputs fixes the shapes of graph inputs (for symbolic dims); names not given keep their shape.
	Inputs map[string]Shape
	// Lenient leaves the outputs of ops it does not know unknown instead of failing, and lists them.
	Lenient bool
	// Fold replaces nodes whose outputs are computable constants (Shape → Gather → Concat chains on
	// static shapes) by initializers, and lifts the constants they feed into attributes.
	Fold bool
}

// InferResult says what inference could not do in lenient mode.
type InferResult struct {
	Skipped []string // "node (op)" whose outputs stayed unknown
	// IntValues holds what inference knows of small integer tensors (shape targets, split sizes),
	// with symbolic entries for dynamic dims.
	IntValues map[string][]Dim
}

// ShapeError names the node whose shape could not be inferred.
type ShapeError struct {
	Node, Op string
	Err      error
}

func (e *ShapeError) Error() string {
	return fmt.Sprintf("cannot infer the shape of node %s (%s): %v", e.Node, e.Op, e.Err)
}

func (e *ShapeError) Unwrap() error { return e.Err }

// inferState carries what inference knows while it walks the graph.
type inferState struct {
	g *Graph
	// vals holds the values of small integer tensors (shapes, axes, indices) as the evaluator of
	// fold.go computes them, with symbolic entries where a dim is symbolic: that is how a dynamic
	// batch flows through Shape → Gather → Concat.
	vals map[string]*intTensor
	// fvals holds the values of small float tensors (Resize scales computed from constants).
	fvals map[string][]float32
	opset int64
}

// InferShapes computes the type and shape of every value of the main graph, in topological order.
func InferShapes(m *Model, opt InferOptions) (InferResult, error) {
	g := m.Graph
	var res InferResult
	st := &inferState{g: g, vals: map[string]*intTensor{}, fvals: map[string][]float32{}, opset: m.Opset()}
	for name, s := range opt.Inputs {
		v, ok := g.Values[name]
		if !ok || !g.IsInput(name) {
			return res, fmt.Errorf("--input-shape names %q, which is not a graph input (inputs: %s)", name, strings.Join(g.Inputs, ", "))
		}
		if v.Shape != nil && len(v.Shape) != len(s) {
			return res, fmt.Errorf("--input-shape gives %d dims for input %q of rank %d", len(s), name, len(v.Shape))
		}
		v.Shape = s.Clone()
	}
	st.seedValues()
	for name, t := range g.Inits {
		if t.Floats != nil && len(t.Dims) <= 1 && len(t.Floats) <= 64 {
			st.fvals[name] = t.Floats
		}
	}
	unknown := map[string]bool{} // values left unknown behind an op inference skipped
	for _, n := range g.Nodes {
		outs, err := st.infer(n)
		if err != nil && opt.Lenient {
			behind := false
			for _, in := range nodeReads(n) {
				behind = behind || unknown[in]
			}
			if err == errUnknownOp || behind {
				if !behind {
					res.Skipped = append(res.Skipped, fmt.Sprintf("%s (%s)", n.Label(), n.OpType))
				}
				for _, o := range n.Outputs {
					unknown[o] = true
				}
				continue
			}
		}
		if err != nil {
			return res, &ShapeError{Node: n.Label(), Op: n.OpType, Err: err}
		}
		for i, o := range n.Outputs {
			if o == "" || i >= len(outs) {
				continue
			}
			v, ok := g.Values[o]
			if !ok {
				v = &Value{Name: o}
				g.Values[o] = v
			}
			v.Type = outs[i].Type
			v.Shape = mergeShape(v.Shape, outs[i].Shape)
		}
		if len(outs) > 0 && len(n.Outputs) > 0 && n.Outputs[0] != "" {
			if v := st.evalInts(n, outs[0].Shape); v != nil {
				st.vals[n.Outputs[0]] = v
			}
		}
	}
	res.IntValues = make(map[string][]Dim, len(st.vals))
	for name, v := range st.vals {
		res.IntValues[name] = v.dimList()
	}
	if opt.Fold {
		if st.fold(m) {
			liftConstantInputs(m)
			RemoveDeadInitializers(g)
		}
	}
	return res, nil
}

// mergeShape prefers the inferred shape but keeps the names of symbolic dims the file declared.
func mergeShape(declared, inferred Shape) Shape {
	if inferred == nil {
		return declared
	}
	if len(declared) == len(inferred) {
		for i := range inferred {
			if !inferred[i].Known() && inferred[i].Param == "" {
				inferred[i] = declared[i]
			}
		}
	}
	return inferred
}

var errUnknownOp = fmt.Errorf("operator not known to chanopt's shape inference")

func dimsOf(v []int64) []Dim {
	d := make([]Dim, len(v))
	for i, x := range v {
		d[i] = D(x)
	}
	return d
}

func (st *inferState) shape(name string) (Shape, error) {
	v, ok := st.g.Values[name]
	if !ok {
		return nil, fmt.Errorf("input %q is not defined", name)
	}
	if v.Shape == nil {
		return nil, fmt.Errorf("shape of input %q is unknown", name)
	}
	return v.Shape, nil
}

func (st *inferState) dtype(name string) DataType {
	if v, ok := st.g.Values[name]; ok {
		return v.Type
	}
	return Undefined
}

// ints returns a fully known integer value (an attribute lifted from a constant, or a folded chain).
func (st *inferState) ints(n *Node, attr string, input int) ([]int64, bool) {
	if a, ok := n.Attrs[attr]; ok && a.Kind == AttrInts {
		return a.Ints, true
	}
	if name := n.Input(input); name != "" && input > 0 {
		if v, ok := st.vals[name]; ok {
			return v.ints()
		}
	}
	return nil, false
}

type typedShape struct {
	Type  DataType
	Shape Shape
}

func one(t DataType, s Shape) []typedShape { return []typedShape{{t, s}} }

func normAxis(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

// broadcast applies numpy broadcasting to shapes.
func broadcast(shapes ...Shape) (Shape, error) {
	rank := 0
	for _, s := range shapes {
		if len(s) > rank {
			rank = len(s)
		}
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = D(1)
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d.Known() && d.Size == 1:
			case o.Known() && o.Size == 1:
				*o = d
			case d.Known() && o.Known() && d.Size != o.Size:
				return nil, fmt.Errorf("shapes %v cannot broadcast", shapes)
			case !o.Known() && d.Known():
				*o = d
			case !o.Known() && !d.Known() && o.Param != d.Param:
				*o = Unknown
			}
		}
	}
	return out, nil
}

func (st *inferState) infer(n *Node) ([]typedShape, error) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, errUnknownOp
	}
	in0 := n.Input(0)
	switch n.OpType {
	case "Conv", "ConvInteger":
		return st.conv(n, false)
	case "ConvTranspose":
		return st.conv(n, true)
	case "MaxPool", "AveragePool", "LpPool":
		s, err := st.pool(n)
		if err != nil {
			return nil, err
		}
		out := one(st.dtype(in0), s)
		if n.OpType == "MaxPool" && len(n.Outputs) > 1 {
			out = append(out, typedShape{Int64, s})
		}
		return out, nil
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		if len(s) < 3 {
			return nil, fmt.Errorf("input rank %d < 3", len(s))
		}
		out := s.Clone()
		for i := 2; i < len(out); i++ {
			out[i] = D(1)
		}
		return one(st.dtype(in0), out), nil
	case "BatchNormalization":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		out := one(st.dtype(in0), s.Clone())
		if len(s) < 2 {
			return nil, fmt.Errorf("input rank %d < 2", len(s))
		}
		for i := 1; i < len(n.Outputs); i++ {
			out = append(out, typedShape{st.dtype(in0), Shape{s[1]}})
		}
		return out, nil
	case "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax",
		"LogSoftmax", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf",
		"Floor", "Ceil", "Round", "Reciprocal", "Identity", "InstanceNormalization", "LRN", "Mish", "Gelu",
		"Hardmax", "ThresholdedRelu", "Sin", "Cos", "Sign", "LpNormalization", "MeanVarianceNormalization",
		"Shrink", "Not", "IsNaN", "IsInf", "CumSum", "LayerNormalization", "GroupNormalization":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		t := st.dtype(in0)
		switch n.OpType {
		case "IsNaN", "IsInf":
			t = Bool
		}
		if n.OpType == "PRelu" {
			if ps, err := st.shape(n.Input(1)); err == nil {
				if b, err := broadcast(s, ps); err == nil {
					s = b
				}
			}
		}
		out := one(t, s.Clone())
		if n.OpType == "LayerNormalization" {
			for i := 1; i < len(n.Outputs); i++ {
				out = append(out, typedShape{Float, nil})
			}
		}
		return out, nil
	case "Dropout":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		return []typedShape{{st.dtype(in0), s.Clone()}, {Bool, s.Clone()}}, nil
	case "Cast", "CastLike":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		t := DataType(n.Int("to", int64(Float)))
		if n.OpType == "CastLike" {
			t = st.dtype(n.Input(1))
		}
		return one(t, s.Clone()), nil
	case "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean", "Mod", "BitShift",
		"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "PRelu2":
		var shapes []Shape
		for _, in := range n.Inputs {
			if in == "" {
				continue
			}
			s, err := st.shape(in)
			if err != nil {
				return nil, err
			}
			shapes = append(shapes, s)
		}
		s, err := broadcast(shapes...)
		if err != nil {
			return nil, err
		}
		t := st.dtype(in0)
		switch n.OpType {
		case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
			t = Bool
		case "Where":
			t = st.dtype(n.Input(1))
		}
		return one(t, s), nil
	case "Concat":
		return st.concat(n)
	case "Split":
		return st.split(n)
	case "Slice":
		return st.slice(n)
	case "Flatten":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		axis := n.Int("axis", 1)
		if axis < 0 {
			axis += int64(len(s))
		}
		if axis < 0 || axis > int64(len(s)) {
			return nil, fmt.Errorf("axis %d out of range for rank %d", axis, len(s))
		}
		return one(st.dtype(in0), Shape{prodDims(s[:axis]), prodDims(s[axis:])}), nil
	case "Reshape":
		return st.reshape(n)
	case "Transpose":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		perm := n.Ints("perm")
		if perm == nil {
			for i := len(s) - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		if len(perm) != len(s) {
			return nil, fmt.Errorf("perm %v does not match rank %d", perm, len(s))
		}
		out := make(Shape, len(s))
		for i, p := range perm {
			if p < 0 || p >= int64(len(s)) {
				return nil, fmt.Errorf("perm %v out of range", perm)
			}
			out[i] = s[p]
		}
		return one(st.dtype(in0), out), nil
	case "Squeeze":
		return st.squeeze(n)
	case "Unsqueeze":
		return st.unsqueeze(n)
	case "Gemm":
		a, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		b, err := st.shape(n.Input(1))
		if err != nil {
			return nil, err
		}
		if len(a) != 2 || len(b) != 2 {
			return nil, fmt.Errorf("Gemm wants 2-D inputs, got %v and %v", a, b)
		}
		m, k := a[0], a[1]
		if n.Int("transA", 0) != 0 {
			m, k = k, m
		}
		k2, nn := b[0], b[1]
		if n.Int("transB", 0) != 0 {
			k2, nn = nn, k2
		}
		if k.Known() && k2.Known() && k.Size != k2.Size {
			return nil, fmt.Errorf("inner dims differ: A %v, B %v", a, b)
		}
		return one(st.dtype(in0), Shape{m, nn}), nil
	case "MatMul", "MatMulInteger":
		return st.matmul(n)
	case "Pad":
		return st.pad(n)
	case "Resize", "Upsample":
		return st.resize(n)
	case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum", "ArgMax", "ArgMin":
		return st.reduce(n)
	case "Shape":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		start, end := shapeRange(n, int64(len(s)))
		return one(Int64, ShapeOf(end-start)), nil
	case "Size":
		if _, err := st.shape(in0); err != nil {
			return nil, err
		}
		return one(Int64, Shape{}), nil
	case "Gather":
		return st.gather(n)
	case "ConstantOfShape":
		t := Float
		if a, ok := n.Attrs["value"]; ok && a.T != nil {
			t = a.T.Type
		}
		if v, ok := st.vals[in0]; ok {
			return one(t, v.shape()), nil
		}
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		if len(s) != 1 || !s[0].Known() {
			return nil, fmt.Errorf("shape input has unknown length")
		}
		out := make(Shape, s[0].Size)
		for i := range out {
			out[i] = Unknown
		}
		return one(t, out), nil
	case "Expand":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		v, ok := st.vals[n.Input(1)]
		if !ok {
			return nil, fmt.Errorf("shape input is not a known constant")
		}
		out, err := broadcast(s, v.shape())
		if err != nil {
			return nil, err
		}
		return one(st.dtype(in0), out), nil
	case "Tile":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		r, ok := st.ints(n, "repeats", 1)
		if !ok || len(r) != len(s) {
			return nil, fmt.Errorf("repeats are not a known constant of rank %d", len(s))
		}
		out := s.Clone()
		for i := range out {
			if out[i].Known() {
				out[i] = D(out[i].Size * r[i])
			} else if r[i] != 1 {
				out[i] = Unknown
			}
		}
		return one(st.dtype(in0), out), nil
	case "Range":
		return st.rangeOp(n)
	case "Constant":
		if a, ok := n.Attrs["value"]; ok && a.T != nil {
			return one(a.T.Type, a.T.Shape()), nil
		}
		if a, ok := n.Attrs["sparse_value"]; ok && a.Raw != nil && a.Raw.SparseTensor != nil {
			return one(DataType(a.Raw.SparseTensor.GetValues().GetDataType()), ShapeOf(a.Raw.SparseTensor.Dims...)), nil
		}
		return nil, fmt.Errorf("Constant without a tensor value")
	case "DepthToSpace", "SpaceToDepth":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		if len(s) != 4 {
			return nil, fmt.Errorf("input rank %d, want 4", len(s))
		}
		b := n.Int("blocksize", 1)
		out := s.Clone()
		mul := func(d Dim, f int64) Dim {
			if d.Known() {
				return D(d.Size * f)
			}
			return Unknown
		}
		div := func(d Dim, f int64) Dim {
			if d.Known() {
				return D(d.Size / f)
			}
			return Unknown
		}
		if n.OpType == "DepthToSpace" {
			out[1], out[2], out[3] = div(s[1], b*b), mul(s[2], b), mul(s[3], b)
		} else {
			out[1], out[2], out[3] = mul(s[1], b*b), div(s[2], b), div(s[3], b)
		}
		return one(st.dtype(in0), out), nil
	}
	return nil, errUnknownOp
}

// prodDims multiplies dims, giving an unknown dim when any is unknown.
func prodDims(ds []Dim) Dim {
	p := int64(1)
	for _, d := range ds {
		if !d.Known() {
			if len(ds) == 1 {
				return d
			}
			return Unknown
		}
		p *= d.Size
	}
	return D(p)
}

// spatialOut gives the output sizes of a Conv, ConvTranspose or pool along the spatial axes of in,
// unknown where the input's dim is.
func spatialOut(w Window, in Shape, transpose bool) (Shape, error) {
	r := len(w.Kernel)
	if len(in) != r+2 {
		return nil, fmt.Errorf("input %v does not match a %d-D kernel", in, r)
	}
	out := make(Shape, r)
	for i := range out {
		x := in[i+2]
		if !x.Known() {
			out[i] = Unknown
			if len(w.OutputShape) >= r && transpose {
				out[i] = D(w.OutputShape[len(w.OutputShape)-r+i])
			}
			continue
		}
		axis := w.Axis
		if transpose {
			axis = w.TransposeAxis
		}
		o, _, _, err := axis(i, r, x.Size)
		if err != nil {
			return nil, err
		}
		out[i] = D(o)
	}
	return out, nil
}

func (st *inferState) conv(n *Node, transpose bool) ([]typedShape, error) {
	x, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	w, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	if len(w) < 3 || len(x) != len(w) {
		return nil, fmt.Errorf("weight %v does not match input %v", w, x)
	}
	group := n.Int("group", 1)
	win := NodeWindow(n, w[2:].Sizes())
	for _, k := range win.Kernel {
		if k <= 0 {
			return nil, fmt.Errorf("kernel shape %v unknown", win.Kernel)
		}
	}
	sp, err := spatialOut(win, x, transpose)
	if err != nil {
		return nil, err
	}
	if transpose {
		outC := Unknown
		if w[1].Known() {
			outC = D(w[1].Size * group)
		}
		return one(st.dtype(n.Input(0)), append(Shape{x[0], outC}, sp...)), nil
	}
	if x[1].Known() && w[1].Known() && x[1].Size != w[1].Size*group {
		return nil, fmt.Errorf("input has %d channels, weight %v with group %d wants %d", x[1].Size, w, group, w[1].Size*group)
	}
	return one(st.dtype(n.Input(0)), append(Shape{x[0], w[0]}, sp...)), nil
}

func (st *inferState) pool(n *Node) (Shape, error) {
	x, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	if n.Ints("kernel_shape") == nil {
		return nil, fmt.Errorf("no kernel_shape")
	}
	sp, err := spatialOut(NodeWindow(n, nil), x, false)
	if err != nil {
		return nil, err
	}
	return append(Shape{x[0], x[1]}, sp...), nil
}

func (st *inferState) concat(n *Node) ([]typedShape, error) {
	var out Shape
	var axis int
	for i, in := range n.Inputs {
		if in == "" {
			continue
		}
		s, err := st.shape(in)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = s.Clone()
			axis, err = normAxis(n.Int("axis", 0), len(s))
			if err != nil {
				return nil, err
			}
			continue
		}
		if len(s) != len(out) {
			return nil, fmt.Errorf("input %d has rank %d, want %d", i, len(s), len(out))
		}
		a, b := out[axis], s[axis]
		if a.Known() && b.Known() {
			out[axis] = D(a.Size + b.Size)
		} else {
			out[axis] = Unknown
		}
	}
	if out == nil {
		return nil, fmt.Errorf("no inputs")
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) split(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(n.Int("axis", 0), len(s))
	if err != nil {
		return nil, err
	}
	sizes, ok := st.ints(n, "split", 1)
	if !ok && n.Input(1) != "" {
		return nil, fmt.Errorf("split sizes are not a known constant")
	}
	k := len(n.Outputs)
	if sizes == nil {
		if !s[axis].Known() {
			out := make([]typedShape, k)
			for i := range out {
				c := s.Clone()
				c[axis] = Unknown
				out[i] = typedShape{st.dtype(n.Input(0)), c}
			}
			return out, nil
		}
		total := s[axis].Size
		chunk := (total + int64(k) - 1) / int64(k)
		for i := 0; i < k; i++ {
			c := chunk
			if rem := total - int64(i)*chunk; rem < chunk {
				c = rem
			}
			sizes = append(sizes, c)
		}
	}
	if len(sizes) != k {
		return nil, fmt.Errorf("%d split sizes for %d outputs", len(sizes), k)
	}
	var sum int64
	out := make([]typedShape, k)
	for i, c := range sizes {
		sum += c
		o := s.Clone()
		o[axis] = D(c)
		out[i] = typedShape{st.dtype(n.Input(0)), o}
	}
	if s[axis].Known() && sum != s[axis].Size {
		return nil, fmt.Errorf("split sizes %v do not add up to %d", sizes, s[axis].Size)
	}
	return out, nil
}

func (st *inferState) slice(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	starts, ok1 := st.ints(n, "starts", 1)
	ends, ok2 := st.ints(n, "ends", 2)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("starts and ends are not known constants")
	}
	axes, okA := st.ints(n, "axes", 3)
	if !okA {
		if n.Input(3) != "" {
			return nil, fmt.Errorf("axes are not a known constant")
		}
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	steps, okS := st.ints(n, "steps", 4)
	if !okS {
		if n.Input(4) != "" {
			return nil, fmt.Errorf("steps are not a known constant")
		}
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(ends) != len(starts) || len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v, steps %v differ in length", starts, ends, axes, steps)
	}
	out := s.Clone()
	for i, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		if steps[i] == 0 {
			return nil, fmt.Errorf("step 0")
		}
		if !s[ax].Known() {
			out[ax] = Unknown
			continue
		}
		_, _, c := SliceRange(starts[i], ends[i], steps[i], s[ax].Size)
		out[ax] = D(c)
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) reshape(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	var target []Dim
	if sh := n.Ints("shape"); sh != nil {
		target = dimsOf(sh)
	} else if v, ok := st.vals[n.Input(1)]; ok {
		target = v.shape()
	} else {
		return nil, fmt.Errorf("target shape is not a known constant")
	}
	allowZero := n.Int("allowzero", 0) != 0
	out := make(Shape, len(target))
	infer := -1
	for i, d := range target {
		switch {
		case d.Known() && d.Size == 0 && !allowZero:
			if i >= len(s) {
				return nil, fmt.Errorf("shape %v copies dim %d of a rank-%d input", target, i, len(s))
			}
			out[i] = s[i]
		case d.Known():
			out[i] = d
		case !d.Known() && d.Param != "":
			out[i] = d
		default:
			// a -1 (or an unknown value): at most one may be inferred
			if infer >= 0 {
				out[i] = Unknown
				continue
			}
			infer = i
		}
	}
	for i, d := range target {
		if d.Known() && d.Size == -1 {
			infer = i
		}
	}
	if infer >= 0 {
		if total := s.NumElements(); total >= 0 {
			rest := int64(1)
			for i, d := range out {
				if i != infer {
					rest *= d.Size
				}
			}
			switch {
			case !out.knownExcept(infer) || rest <= 0:
				out[infer] = Unknown
			case total%rest != 0:
				return nil, fmt.Errorf("cannot reshape %v to %v", s, target)
			default:
				out[infer] = D(total / rest)
			}
		} else {
			// Symbolic batch: the known part of the input divided by the known part of the target
			// gives the inferred dim whenever the symbols cancel (N×C×H×W to N×-1).
			out[infer] = cancelSymbols(s, out, infer)
		}
	}
	if tot, got := s.NumElements(), out.NumElements(); tot >= 0 && got >= 0 && tot != got {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", s, tot, out)
	}
	return one(st.dtype(n.Input(0)), out), nil
}

// knownExcept reports whether every dim but one is known.
func (s Shape) knownExcept(skip int) bool {
	for i, d := range s {
		if i != skip && !d.Known() {
			return false
		}
	}
	return true
}

// cancelSymbols infers a reshape's -1 when both shapes share the same symbolic dims.
func cancelSymbols(in, out Shape, infer int) Dim {
	syms := map[string]int{}
	known := int64(1)
	for _, d := range in {
		switch {
		case d.Known():
			known *= d.Size
		case d.Param != "":
			syms[d.Param]++
		default:
			return Unknown
		}
	}
	rest := int64(1)
	for i, d := range out {
		if i == infer {
			continue
		}
		switch {
		case d.Known():
			rest *= d.Size
		case d.Param != "":
			syms[d.Param]--
		default:
			return Unknown
		}
	}
	// One symbol left over once (N×1×1×C to -1×C) is the inferred dim itself when the known
	// parts match.
	left := ""
	for sym, c := range syms {
		switch {
		case c == 0:
		case c == 1 && left == "":
			left = sym
		default:
			return Unknown
		}
	}
	if rest == 0 || known%rest != 0 {
		return Unknown
	}
	if left != "" {
		if known == rest {
			return Dim{Size: -1, Param: left}
		}
		return Unknown
	}
	return D(known / rest)
}

func (st *inferState) squeeze(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	axes, ok := st.ints(n, "axes", 1)
	if !ok && n.Input(1) != "" {
		return nil, fmt.Errorf("axes are not a known constant")
	}
	drop := map[int]bool{}
	if axes == nil {
		for i, d := range s {
			if !d.Known() {
				return nil, fmt.Errorf("squeeze without axes on an unknown dim")
			}
			if d.Size == 1 {
				drop[i] = true
			}
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		drop[ax] = true
	}
	var out Shape = Shape{}
	for i, d := range s {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) unsqueeze(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	axes, ok := st.ints(n, "axes", 1)
	if !ok {
		return nil, fmt.Errorf("axes are not a known constant")
	}
	rank := len(s) + len(axes)
	ins := map[int]bool{}
	for _, a := range axes {
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		ins[ax] = true
	}
	out := make(Shape, 0, rank)
	j := 0
	for i := 0; i < rank; i++ {
		if ins[i] {
			out = append(out, D(1))
		} else {
			out = append(out, s[j])
			j++
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) matmul(n *Node) ([]typedShape, error) {
	a, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	b, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("MatMul of a scalar")
	}
	aa, bb := a.Clone(), b.Clone()
	if len(aa) == 1 {
		aa = Shape{D(1), aa[0]}
	}
	if len(bb) == 1 {
		bb = Shape{bb[0], D(1)}
	}
	k1, k2 := aa[len(aa)-1], bb[len(bb)-2]
	if k1.Known() && k2.Known() && k1.Size != k2.Size {
		return nil, fmt.Errorf("inner dims differ: %v and %v", a, b)
	}
	batch, err := broadcast(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return nil, err
	}
	out := append(batch, aa[len(aa)-2], bb[len(bb)-1])
	if len(b) == 1 {
		out = out[:len(out)-1]
	}
	if len(a) == 1 {
		out = append(out[:len(out)-2], out[len(out)-1:]...)
		if len(b) == 1 {
			out = out[:len(out)-1]
		}
	}
	t := st.dtype(n.Input(0))
	if n.OpType == "MatMulInteger" {
		t = Int32
	}
	return one(t, out), nil
}

func (st *inferState) pad(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	pads, ok := st.ints(n, "pads", 1)
	if !ok {
		if p := n.Ints("paddings"); p != nil {
			pads = p
		} else {
			return nil, fmt.Errorf("pads are not a known constant")
		}
	}
	axes, okA := st.ints(n, "axes", 3)
	if !okA {
		for i := range s {
			axes = append(axes, int64(i))
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("%d pads for %d axes", len(pads), len(axes))
	}
	out := s.Clone()
	for i, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		if out[ax].Known() {
			out[ax] = D(out[ax].Size + pads[i] + pads[i+len(axes)])
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) resize(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	out := s.Clone()
	sizes, hasSizes := st.ints(n, "sizes", 3)
	if hasSizes && len(sizes) > 0 {
		if len(sizes) != len(s) {
			if axes := n.Ints("axes"); len(axes) == len(sizes) {
				for i, a := range axes {
					ax, err := normAxis(a, len(s))
					if err != nil {
						return nil, err
					}
					out[ax] = D(sizes[i])
				}
				return one(st.dtype(n.Input(0)), out), nil
			}
			return nil, fmt.Errorf("sizes %v do not match rank %d", sizes, len(s))
		}
		return one(st.dtype(n.Input(0)), ShapeOf(sizes...)), nil
	}
	scales := n.Floats("scales")
	if scales == nil {
		idx := 2
		if n.OpType == "Upsample" || st.opset == 10 {
			idx = 1
		}
		if v, ok := st.fvals[n.Input(idx)]; ok {
			scales = v
		}
	}
	if scales == nil {
		return nil, fmt.Errorf("scales and sizes are not known constants")
	}
	if len(scales) != len(s) {
		return nil, fmt.Errorf("scales %v do not match rank %d", scales, len(s))
	}
	for i, sc := range scales {
		if out[i].Known() {
			out[i] = D(int64(float64(out[i].Size) * float64(sc)))
		} else if sc != 1 {
			out[i] = Unknown
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) reduce(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	keep := n.Int("keepdims", 1) != 0
	var axes []int64
	if n.OpType == "ArgMax" || n.OpType == "ArgMin" {
		axes = []int64{n.Int("axis", 0)}
	} else {
		var ok bool
		axes, ok = st.ints(n, "axes", 1)
		if !ok && n.Input(1) != "" {
			return nil, fmt.Errorf("axes are not a known constant")
		}
	}
	red := map[int]bool{}
	if len(axes) == 0 {
		if n.Int("noop_with_empty_axes", 0) != 0 {
			return one(st.dtype(n.Input(0)), s.Clone()), nil
		}
		for i := range s {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		red[ax] = true
	}
	out := Shape{}
	for i, d := range s {
		switch {
		case !red[i]:
			out = append(out, d)
		case keep:
			out = append(out, D(1))
		}
	}
	t := st.dtype(n.Input(0))
	if n.OpType == "ArgMax" || n.OpType == "ArgMin" {
		t = Int64
	}
	return one(t, out), nil
}

func (st *inferState) gather(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	is, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(n.Int("axis", 0), len(s))
	if err != nil {
		return nil, err
	}
	out := append(append(s[:axis:axis].Clone(), is...), s[axis+1:]...)
	if len(out) == 0 {
		out = Shape{}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) rangeOp(n *Node) ([]typedShape, error) {
	get := func(i int) (int64, bool) {
		v, ok := st.vals[n.Input(i)]
		if !ok || len(v.el) != 1 || !v.el[0].known {
			return 0, false
		}
		return v.el[0].v, true
	}
	start, ok1 := get(0)
	limit, ok2 := get(1)
	delta, ok3 := get(2)
	t := st.dtype(n.Input(0))
	if !ok1 || !ok2 || !ok3 || delta == 0 {
		return one(t, Shape{Unknown}), nil
	}
	count := (limit - start + delta - 1) / delta
	if delta < 0 {
		count = (start - limit - delta - 1) / -delta
	}
	if count < 0 {
		count = 0
	}
	return one(t, ShapeOf(count)), nil
}

// ParseInputShape parses the --input-shape flag value: "[NAME:]D0,D1,..". An empty name means the
// model's first input.
func ParseInputShape(spec string) (name string, s Shape, err error) {
	body := spec
	if i := strings.LastIndex(spec, ":"); i >= 0 {
		name, body = spec[:i], spec[i+1:]
	}
	for _, f := range strings.Split(body, ",") {
		f = strings.TrimSpace(f)
		var d int64
		if _, err := fmt.Sscan(f, &d); err != nil || d <= 0 {
			return "", nil, fmt.Errorf("bad --input-shape %q: %q is not a positive dim", spec, f)
		}
		s = append(s, D(d))
	}
	return name, s, nil
}

// BatchOne returns input shapes with a symbolic first dim set to 1 and everything else as declared;
// it fails naming the input when any other dim is not static.
func BatchOne(g *Graph, given map[string]Shape) (map[string]Shape, error) {
	out := map[string]Shape{}
	names := append([]string(nil), g.Inputs...)
	sort.Strings(names)
	for _, name := range names {
		if s, ok := given[name]; ok {
			out[name] = s
			continue
		}
		v := g.Values[name]
		if v.Shape == nil {
			return nil, fmt.Errorf("input %q has no declared shape; give --input-shape %s:D0,D1,..", name, name)
		}
		s := v.Shape.Clone()
		if len(s) > 0 && !s[0].Known() {
			s[0] = D(1)
		}
		if !s.Static() {
			return nil, fmt.Errorf("input %q has symbolic dims %v; give --input-shape %s:D0,D1,..", name, v.Shape, name)
		}
		out[name] = s
	}
	return out, nil
}

package onnx

import (
	"fmt"
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
	// row-major: a known element as its Size (negative ones too, such as a Reshape's -1), a
	// dynamic dim as its symbol, anything else as Unknown.
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

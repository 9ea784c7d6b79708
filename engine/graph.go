package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// graph is a compiled graph: values numbered, initializers converted, nodes turned into steps.
// A Program compiles one per set of values fusion must keep; a Trainer compiles one unfused, with
// its parameters marked variable.
type graph struct {
	names  []string
	ids    map[string]int
	consts []*Tensor // by value id: the initializer's value (a Trainer's parameters included), or nil
	steps  []*step
	inIDs  []int
	outIDs []int
	// declared holds the graph inputs' declared shapes (-1 for free dims), by input position.
	declared [][]int
	// fused lists the values that fusion removed (computed inside a fused step, not stored).
	fused map[string]bool
	plans map[string]*plan
	last  *plan
}

// step is one compiled node (or a fused chain of nodes).
type step struct {
	label  string // the node's name, for messages
	opType string
	op     op
	node   *onnx.Node // the node it was built from (for a fused chain, the last, where it runs)
	in     []int      // value ids, -1 for absent optional inputs
	out    []int
}

func (s *step) errorf(err error) error {
	return fmt.Errorf("engine: node %s (%s): %w", s.label, s.opType, err)
}

// compileOptions says how compileGraph turns nodes into steps.
type compileOptions struct {
	// keepUnfused names values fusion must leave readable.
	keepUnfused map[string]bool
	noFusion    bool
	// variable names initializers whose values change between runs (a Trainer's parameters): they
	// are values in consts like the others, but op builders must not fold them (pack a weight
	// once, say), and fusion must not fold them either, so variable is used with noFusion.
	variable map[string]bool
	// buildNode, when set, is asked first for each node's op; ok false falls back to builderFor.
	buildNode func(b *builder) (o op, ok bool, err error)
}

// valueID returns the id of the value name, numbering it when new (-1 for "", an absent input).
func (g *graph) valueID(name string) int {
	if name == "" {
		return -1
	}
	if i, ok := g.ids[name]; ok {
		return i
	}
	g.ids[name] = len(g.names)
	g.names = append(g.names, name)
	g.consts = append(g.consts, nil)
	return len(g.names) - 1
}

// compileGraph builds the steps of a model. Initializers are numbered first, in InitOrder and then
// by name (so ids do not depend on map order), then the graph inputs, then the nodes' values.
func compileGraph(m *onnx.Model, opt compileOptions) (*graph, error) {
	if opt.variable != nil && !opt.noFusion {
		return nil, errors.New("engine: internal error: variable initializers need noFusion")
	}
	mg := m.Graph
	g := &graph{ids: map[string]int{}, fused: map[string]bool{}, plans: map[string]*plan{}}
	id := g.valueID
	consts := map[string]*Tensor{} // what op builders and fusion may fold
	addInit := func(name string, t *onnx.Tensor) error {
		if i, ok := g.ids[name]; ok && g.consts[i] != nil {
			return nil
		}
		ct, err := constTensor(t)
		if err != nil {
			return fmt.Errorf("engine: initializer %s: %w", name, err)
		}
		g.consts[id(name)] = ct
		if !opt.variable[name] {
			consts[name] = ct
		}
		return nil
	}
	for _, name := range mg.InitOrder {
		if t := mg.Inits[name]; t != nil {
			if err := addInit(name, t); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range sortedNames(mg.Inits) { // initializers missing from InitOrder
		if err := addInit(name, mg.Inits[name]); err != nil {
			return nil, err
		}
	}
	for _, name := range mg.Inputs {
		g.inIDs = append(g.inIDs, id(name))
		var dims []int
		if v := mg.Values[name]; v != nil && v.Shape != nil {
			dims = make([]int, len(v.Shape))
			for i, d := range v.Shape {
				dims[i] = int(d.Size)
			}
		}
		g.declared = append(g.declared, dims)
	}
	opset := m.Opset()
	var fusions map[*onnx.Node]*fusion
	var skip map[*onnx.Node]bool
	var normActs map[*onnx.Node]*onnx.Node
	if !opt.noFusion {
		fusions, skip = planFusions(mg, consts, opt.keepUnfused)
		normActs = planNormActs(mg, skip, fusions, opt.keepUnfused)
		for _, a := range normActs {
			skip[a] = true
		}
	}
	for _, n := range mg.Nodes {
		if skip[n] {
			continue
		}
		if n.Domain != "" && n.Domain != "ai.onnx" {
			return nil, fmt.Errorf("engine: node %s: op %s.%s is not supported", n.Label(), n.Domain, n.OpType)
		}
		b := &builder{g: mg, n: n, opset: opset, consts: consts}
		var o op
		var err error
		inputs, outputs := n.Inputs, n.Outputs
		label, opType := n.Label(), n.OpType
		if f := fusions[n]; f != nil {
			o, err = buildFusedConv(b, f)
			inputs, outputs = f.inputs, f.outputs
			opType = f.opType()
			for _, v := range f.removed {
				g.fused[v] = true
			}
		} else {
			ok := false
			if opt.buildNode != nil {
				o, ok, err = opt.buildNode(b)
			}
			if !ok {
				build, known := builderFor(n.OpType)
				if !known {
					return nil, fmt.Errorf("engine: node %s: op %s is not supported", n.Label(), n.OpType)
				}
				o, err = build(b)
			}
			if a := normActs[n]; a != nil && err == nil {
				if bn, ok := o.(*batchNormOp); ok {
					bn.lo, bn.hi = activationBounds(a)
					g.fused[n.Outputs[0]] = true
					outputs = []string{a.Outputs[0]}
					opType += "+" + a.OpType
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("engine: node %s (%s): %w", label, opType, err)
		}
		s := &step{label: label, opType: opType, op: o, node: n}
		for _, in := range inputs {
			s.in = append(s.in, id(in))
		}
		for _, out := range outputs {
			s.out = append(s.out, id(out))
		}
		g.steps = append(g.steps, s)
	}
	// every value read must be defined by an initializer, an input or an earlier step
	defined := make([]bool, len(g.names))
	for i, c := range g.consts {
		defined[i] = c != nil
	}
	for _, i := range g.inIDs {
		defined[i] = true
	}
	for _, s := range g.steps {
		for _, i := range s.in {
			if i >= 0 && !defined[i] {
				return nil, fmt.Errorf("engine: node %s (%s) reads %q, which nothing defines", s.label, s.opType, g.names[i])
			}
		}
		for _, o := range s.out {
			if o >= 0 {
				defined[o] = true
			}
		}
	}
	for _, name := range mg.Outputs {
		i := id(name)
		if i >= len(defined) || !defined[i] {
			return nil, fmt.Errorf("engine: graph output %q is not computed by any node", name)
		}
		g.outIDs = append(g.outIDs, i)
	}
	return g, nil
}

// constTensor converts an initializer, keeping the kernels' slack after float data.
func constTensor(t *onnx.Tensor) (*Tensor, error) {
	shape := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		shape[i] = int(d)
	}
	switch {
	case t.Floats != nil || (t.Type.IsFloat() && t.NumElements() == 0):
		d := newFloats(len(t.Floats))
		copy(d, t.Floats)
		return &Tensor{Shape: shape, Data: d}, nil
	case t.Ints != nil || (t.Type.IsInt() && t.NumElements() == 0):
		return &Tensor{Shape: shape, Ints: append([]int64{}, t.Ints...)}, nil
	}
	return nil, fmt.Errorf("%v tensors are not supported", t.Type)
}

// sortedNames returns the keys of m in increasing order.
func sortedNames(m map[string]*onnx.Tensor) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

package onnx

import (
	"fmt"
	"sort"
)

// NewestOpset is the newest ai.onnx opset chanopt knows, the one place that says so: the forms below,
// shape inference, the engine's kernels and rewrite's coupling rules follow the operator definitions
// up to it (the latest form change here is the axes input of the Reduce ops, opset 18). Opset 19
// changed ops they read again (AveragePool gained dilations, Resize a coordinate mode, Pad a mode),
// so a model at a newer opset may use forms they would misread: Import refuses it rather than
// shrink it wrongly. Raise this only together with the rules for what the new opsets changed.
const NewestOpset = 18

// A paramInput is an operator argument that some opsets take as an attribute and later ones as an
// input. The IR always holds it as the attribute when its input is a constant, so the rest of the
// program reads one form; export writes the form the model's opset wants.
type paramInput struct {
	index int      // input position in the opsets that take it as an input
	attr  string   // attribute name in the IR (and in the opsets that take it as an attribute)
	kind  AttrKind // AttrFloat (scalar), AttrFloats or AttrInts
}

// paramInputs lists, per op, the opset from which its arguments became inputs and the arguments.
var paramInputs = map[string]struct {
	since  int64
	params []paramInput
}{
	"Clip":       {11, []paramInput{{1, "min", AttrFloat}, {2, "max", AttrFloat}}},
	"Split":      {13, []paramInput{{1, "split", AttrInts}}},
	"Squeeze":    {13, []paramInput{{1, "axes", AttrInts}}},
	"Unsqueeze":  {13, []paramInput{{1, "axes", AttrInts}}},
	"ReduceSum":  {13, []paramInput{{1, "axes", AttrInts}}},
	"ReduceMean": {18, []paramInput{{1, "axes", AttrInts}}},
	"ReduceMax":  {18, []paramInput{{1, "axes", AttrInts}}},
	"ReduceMin":  {18, []paramInput{{1, "axes", AttrInts}}},
	"ReduceProd": {18, []paramInput{{1, "axes", AttrInts}}},
	"ReduceL2":   {18, []paramInput{{1, "axes", AttrInts}}},
	"Pad":        {11, []paramInput{{1, "pads", AttrInts}, {2, "value", AttrFloat}}},
	"Reshape":    {5, []paramInput{{1, "shape", AttrInts}}},
	"Slice": {10, []paramInput{{1, "starts", AttrInts}, {2, "ends", AttrInts}, {3, "axes", AttrInts},
		{4, "steps", AttrInts}}},
	"Upsample": {9, []paramInput{{1, "scales", AttrFloats}}},
	"Resize":   {11, []paramInput{{1, "roi", AttrFloats}, {2, "scales", AttrFloats}, {3, "sizes", AttrInts}}},
}

// paramSpec returns the lifting rule for a node at the model's opset. Resize at opset 10 took its
// scales as input 1.
func paramSpec(op string, opset int64) (since int64, params []paramInput, ok bool) {
	if op == "Resize" && opset == 10 {
		return 10, []paramInput{{1, "scales", AttrFloats}}, true
	}
	r, ok := paramInputs[op]
	return r.since, r.params, ok
}

// liftConstantInputs turns constant argument inputs into attributes (all of a node's or none).
func liftConstantInputs(m *Model) {
	g := m.Graph
	opset := m.Opset()
	for _, n := range g.Nodes {
		if n.Domain != "" {
			continue
		}
		since, params, ok := paramSpec(n.OpType, opset)
		if !ok || opset < since {
			continue
		}
		liftable, present := true, false
		for _, p := range params {
			name := n.Input(p.index)
			if name == "" {
				continue
			}
			present = true
			if t, ok := g.Inits[name]; !ok || (t.Floats == nil && t.Ints == nil) {
				liftable = false
			}
		}
		if !liftable || !present {
			continue
		}
		for _, p := range params {
			name := n.Input(p.index)
			if name == "" {
				continue
			}
			t := g.Inits[name]
			if t.Type.IsFloat() {
				if g.LiftedFloats == nil {
					g.LiftedFloats = map[string]int64{}
				}
				g.LiftedFloats[name] = t.NumElements()
			}
			if p.attr == "roi" && t.NumElements() == 0 {
				// an empty roi is the same as none
			} else {
				n.setAttr(p.attr, attrFromTensor(t, p.kind))
			}
			if n.ParamNames == nil {
				n.ParamNames = map[string]string{}
			}
			n.ParamNames[p.attr] = name
		}
		n.Inputs = n.Inputs[:1]
	}
}

func attrFromTensor(t *Tensor, kind AttrKind) *Attr {
	a := &Attr{Kind: kind}
	switch kind {
	case AttrFloat:
		if len(t.Floats) > 0 {
			a.F = t.Floats[0]
		} else if len(t.Ints) > 0 {
			a.F = float32(t.Ints[0])
		}
	case AttrFloats:
		a.Floats = append([]float32{}, t.Floats...)
		for _, v := range t.Ints {
			a.Floats = append(a.Floats, float32(v))
		}
	case AttrInts:
		a.Ints = append([]int64{}, t.Ints...)
		for _, v := range t.Floats {
			a.Ints = append(a.Ints, int64(v))
		}
	}
	return a
}

// paramTensor builds the constant input export writes for a lifted attribute.
func paramTensor(name string, a *Attr, kind AttrKind, elem DataType) *Tensor {
	switch kind {
	case AttrFloat:
		t := &Tensor{Name: name, Type: elem, Dims: []int64{}}
		if elem.IsInt() {
			t.Ints = []int64{int64(a.F)}
		} else {
			t.Floats = []float32{a.F}
		}
		return t
	case AttrFloats:
		return NewFloatTensor(name, []int64{int64(len(a.Floats))}, append([]float32{}, a.Floats...))
	}
	return NewIntTensor(name, []int64{int64(len(a.Ints))}, append([]int64{}, a.Ints...))
}

// lowerParams returns the node's inputs in the form the opset wants, creating the constants for the
// lifted attributes in inits (reusing names when the same value is already there), and the set of
// attributes that travel as inputs and must not be written as attributes.
func lowerParams(n *Node, opset int64, g *Graph, inits map[string]*Tensor, newInits *[]string) ([]string, map[string]bool) {
	since, params, ok := paramSpec(n.OpType, opset)
	if !ok || opset < since || n.Domain != "" {
		return n.Inputs, nil
	}
	any := false
	for _, p := range params {
		if _, ok := n.Attrs[p.attr]; ok {
			any = true
		}
	}
	if !any {
		return n.Inputs, nil
	}
	inputs := append([]string(nil), n.Inputs[:1]...)
	skip := map[string]bool{}
	elem := Float
	if v, ok := g.Values[n.Input(0)]; ok && v.Type != Undefined {
		elem = v.Type
	}
	for _, p := range params {
		a, ok := n.Attrs[p.attr]
		for len(inputs) <= p.index {
			inputs = append(inputs, "")
		}
		if !ok {
			// Resize at opset 11 and 12 requires its roi input even when empty.
			if n.OpType == "Resize" && p.attr == "roi" && opset < 13 {
				name := uniqueName(n.Label()+"_roi", g, inits)
				if pn := n.ParamNames["roi"]; pn != "" {
					name = pn
				}
				if _, exists := inits[name]; !exists {
					inits[name] = NewFloatTensor(name, []int64{0}, []float32{})
					*newInits = append(*newInits, name)
				}
				inputs[p.index] = name
			}
			continue
		}
		skip[p.attr] = true
		t := paramTensor("", a, p.kind, elem)
		name := n.ParamNames[p.attr]
		if name == "" {
			name = n.Label() + "_" + p.attr
		}
		if have, exists := inits[name]; exists && !sameData(have, t) {
			name = uniqueName(name, g, inits)
		} else if !exists {
			if _, clash := g.Values[name]; clash {
				if _, isInit := g.Inits[name]; !isInit {
					name = uniqueName(name, g, inits)
				}
			}
		}
		if _, exists := inits[name]; !exists {
			t.Name = name
			inits[name] = t
			*newInits = append(*newInits, name)
		}
		inputs[p.index] = name
	}
	for len(inputs) > 1 && inputs[len(inputs)-1] == "" {
		inputs = inputs[:len(inputs)-1]
	}
	return inputs, skip
}

func sameData(a, b *Tensor) bool {
	if a.Type != b.Type || len(a.Dims) != len(b.Dims) || len(a.Floats) != len(b.Floats) || len(a.Ints) != len(b.Ints) {
		return false
	}
	for i := range a.Dims {
		if a.Dims[i] != b.Dims[i] {
			return false
		}
	}
	for i := range a.Floats {
		if a.Floats[i] != b.Floats[i] {
			return false
		}
	}
	for i := range a.Ints {
		if a.Ints[i] != b.Ints[i] {
			return false
		}
	}
	return true
}

func uniqueName(base string, g *Graph, inits map[string]*Tensor) string {
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s_%d", base, i)
		_, v := g.Values[name]
		_, t := inits[name]
		if !v && !t {
			return name
		}
	}
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package onnx

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx/pb"
)

// Load reads a model file (and its external data) and imports it into the IR.
func Load(path string) (*Model, error) {
	mp, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Import(mp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

// Import builds the IR of a decoded model and normalises it: Constant nodes become initializers,
// Identity of an initializer resolves to it, and inputs that older and newer opsets spell differently
// (Clip min/max, Split sizes, Squeeze/Unsqueeze/Reduce axes, Pad pads, Resize scales/sizes, Slice
// starts/ends, Reshape shape) become attributes when they are constants. A model whose ai.onnx
// opset is newer than NewestOpset is refused, and so is a tensor whose dims do not match its data
// or would not fit in memory (see tensorElements).
func Import(mp *pb.ModelProto) (*Model, error) {
	gp := mp.GetGraph()
	if gp == nil {
		return nil, fmt.Errorf("model has no graph")
	}
	m := &Model{Opsets: map[string]int64{}, Source: mp}
	for _, o := range mp.OpsetImport {
		m.Opsets[o.GetDomain()] = o.GetVersion()
	}
	if _, ok := m.Opsets[""]; !ok {
		if v, ok := m.Opsets["ai.onnx"]; ok {
			m.Opsets[""] = v
		}
	}
	for _, domain := range []string{"", "ai.onnx"} {
		if v, ok := m.Opsets[domain]; ok && v > NewestOpset {
			return nil, fmt.Errorf("ai.onnx opset %d is newer than the newest chanopt knows (%d); export the model at opset %d or lower, or convert it (onnx.version_converter)", v, NewestOpset, NewestOpset)
		}
	}
	g := &Graph{Name: gp.GetName(), Values: map[string]*Value{}, Inits: map[string]*Tensor{}}
	m.Graph = g
	for _, tp := range gp.Initializer {
		t, err := TensorFromProto(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer: %w", err)
		}
		if _, dup := g.Inits[t.Name]; dup {
			return nil, fmt.Errorf("initializer %q is defined twice", t.Name)
		}
		g.Inits[t.Name] = t
		g.InitOrder = append(g.InitOrder, t.Name)
		g.Values[t.Name] = &Value{Name: t.Name, Type: t.Type, Shape: t.Shape()}
	}
	for _, vi := range gp.Input {
		v := valueFromProto(vi)
		if _, isInit := g.Inits[v.Name]; isInit {
			continue // an initializer listed as an input (IR < 4) is still a constant here
		}
		g.Inputs = append(g.Inputs, v.Name)
		g.Values[v.Name] = v
	}
	for _, vi := range gp.ValueInfo {
		if _, ok := g.Values[vi.GetName()]; !ok {
			g.Values[vi.GetName()] = valueFromProto(vi)
		}
	}
	for _, vi := range gp.Output {
		g.Outputs = append(g.Outputs, vi.GetName())
		if _, ok := g.Values[vi.GetName()]; !ok {
			g.Values[vi.GetName()] = valueFromProto(vi)
		}
	}
	for i, np := range gp.Node {
		n, err := nodeFromProto(np)
		if err != nil {
			return nil, fmt.Errorf("node %d (%s): %w", i, np.GetOpType(), err)
		}
		g.Nodes = append(g.Nodes, n)
		for _, o := range n.Outputs {
			if o == "" {
				continue
			}
			if _, ok := g.Values[o]; !ok {
				g.Values[o] = &Value{Name: o}
			}
		}
	}
	if err := g.SortTopological(); err != nil {
		return nil, err
	}
	if err := m.normalise(); err != nil {
		return nil, err
	}
	return m, nil
}

func valueFromProto(vi *pb.ValueInfoProto) *Value {
	v := &Value{Name: vi.GetName()}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return v
	}
	v.Type = DataType(tt.GetElemType())
	if sp := tt.GetShape(); sp != nil {
		v.Shape = make(Shape, len(sp.Dim))
		for i, d := range sp.Dim {
			v.Shape[i] = Unknown
			switch dv := d.Value.(type) {
			case *pb.TensorShapeProto_Dimension_DimValue:
				if dv.DimValue >= 0 {
					v.Shape[i] = D(dv.DimValue)
				}
			case *pb.TensorShapeProto_Dimension_DimParam:
				if dv.DimParam != "" {
					v.Shape[i].Param = dv.DimParam
				}
			}
		}
	}
	return v
}

func nodeFromProto(np *pb.NodeProto) (*Node, error) {
	n := &Node{
		Name: np.GetName(), OpType: np.GetOpType(), Domain: np.GetDomain(),
		Inputs: append([]string(nil), np.Input...), Outputs: append([]string(nil), np.Output...),
		Attrs: make(map[string]*Attr, len(np.Attribute)), Source: np,
	}
	if n.Domain == "ai.onnx" {
		n.Domain = ""
	}
	for _, ap := range np.Attribute {
		a, err := attrFromProto(ap)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", ap.GetName(), err)
		}
		n.Attrs[ap.GetName()] = a
	}
	return n, nil
}

func attrFromProto(ap *pb.AttributeProto) (*Attr, error) {
	a := &Attr{Raw: ap}
	switch ap.GetType() {
	case pb.AttributeProto_FLOAT:
		a.Kind, a.F = AttrFloat, ap.GetF()
	case pb.AttributeProto_INT:
		a.Kind, a.I = AttrInt, ap.GetI()
	case pb.AttributeProto_STRING:
		a.Kind, a.S = AttrString, string(ap.GetS())
	case pb.AttributeProto_TENSOR:
		t, err := TensorFromProto(ap.GetT())
		if err != nil {
			return nil, err
		}
		a.Kind, a.T = AttrTensor, t
	case pb.AttributeProto_FLOATS:
		a.Kind, a.Floats = AttrFloats, append([]float32{}, ap.Floats...)
	case pb.AttributeProto_INTS:
		a.Kind, a.Ints = AttrInts, append([]int64{}, ap.Ints...)
	case pb.AttributeProto_STRINGS:
		a.Kind = AttrStrings
		a.Strings = []string{}
		for _, s := range ap.Strings {
			a.Strings = append(a.Strings, string(s))
		}
	default:
		a.Kind = AttrOther
	}
	return a, nil
}

// normalise runs the import-time normalisation passes.
func (m *Model) normalise() error {
	g := m.Graph
	if err := constantsToInitializers(g); err != nil {
		return err
	}
	resolveIdentities(g)
	foldConstantChains(g)
	liftConstantInputs(m)
	RemoveDeadInitializers(g)
	return nil
}

// constantsToInitializers turns every Constant node of the main graph into an initializer.
func constantsToInitializers(g *Graph) error {
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		if n.OpType != "Constant" || n.Domain != "" || len(n.Outputs) != 1 || g.IsOutput(n.Outputs[0]) {
			kept = append(kept, n)
			continue
		}
		t, err := constantValue(n)
		if err != nil {
			return fmt.Errorf("Constant %s: %w", n.Label(), err)
		}
		if t == nil { // sparse or unknown form: leave the node in place
			kept = append(kept, n)
			continue
		}
		t.Name = n.Outputs[0]
		g.Inits[t.Name] = t
		g.InitOrder = append(g.InitOrder, t.Name)
		g.Values[t.Name] = &Value{Name: t.Name, Type: t.Type, Shape: t.Shape()}
	}
	g.Nodes = kept
	return nil
}

// constantValue reads a Constant node's value in any of its opset forms; nil for sparse values.
func constantValue(n *Node) (*Tensor, error) {
	for name, a := range n.Attrs {
		switch name {
		case "value":
			if a.T == nil {
				return nil, fmt.Errorf("value is not a tensor")
			}
			if a.T.Floats == nil && a.T.Ints == nil {
				return nil, nil // strings: kept as a node
			}
			t := a.T.Clone()
			t.Source, t.sum = nil, 0
			return t, nil
		case "value_float":
			return NewFloatTensor("", nil, []float32{a.F}), nil
		case "value_floats":
			return NewFloatTensor("", []int64{int64(len(a.Floats))}, append([]float32{}, a.Floats...)), nil
		case "value_int":
			return NewIntTensor("", nil, []int64{a.I}), nil
		case "value_ints":
			return NewIntTensor("", []int64{int64(len(a.Ints))}, append([]int64{}, a.Ints...)), nil
		}
	}
	return nil, nil
}

// resolveIdentities makes the readers of Identity(initializer) read the initializer itself.
func resolveIdentities(g *Graph) {
	alias := map[string]string{}
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		if n.OpType == "Identity" && n.Domain == "" && len(n.Inputs) == 1 && len(n.Outputs) == 1 && !g.IsOutput(n.Outputs[0]) {
			src := n.Inputs[0]
			if a, ok := alias[src]; ok {
				src = a
			}
			if _, isInit := g.Inits[src]; isInit {
				alias[n.Outputs[0]] = src
				delete(g.Values, n.Outputs[0])
				continue
			}
		}
		kept = append(kept, n)
	}
	g.Nodes = kept
	if len(alias) == 0 {
		return
	}
	for _, n := range g.Nodes {
		for i, in := range n.Inputs {
			if a, ok := alias[in]; ok {
				n.Inputs[i] = a
			}
		}
	}
}

// RemoveDeadInitializers drops initializers no node reads and no output names.
func RemoveDeadInitializers(g *Graph) {
	used := map[string]bool{}
	for _, n := range g.Nodes {
		for _, in := range nodeReads(n) {
			used[in] = true
		}
	}
	for _, o := range g.Outputs {
		used[o] = true
	}
	order := g.InitOrder[:0]
	for _, name := range g.InitOrder {
		if used[name] {
			order = append(order, name)
		} else if _, ok := g.Inits[name]; ok {
			delete(g.Inits, name)
			delete(g.Values, name)
		}
	}
	g.InitOrder = order
}

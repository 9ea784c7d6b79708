package onnx

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/chanopt/chanopt/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// Save exports the model and writes it atomically to path.
func Save(path string, m *Model, opt WriteOptions) error {
	mp, err := m.Export()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return WriteFile(path, mp, opt)
}

// Export converts the IR back to a ModelProto. Everything the IR does not represent (metadata, doc
// strings, opset imports, functions, training info, unknown fields) comes from the source model, and
// nodes, tensors and value infos the IR did not change are the very protos that were read.
func (m *Model) Export() (*pb.ModelProto, error) {
	g := m.Graph
	var mp *pb.ModelProto
	var src *pb.GraphProto
	if m.Source != nil {
		src = m.Source.Graph
		m.Source.Graph = nil
		mp = proto.Clone(m.Source).(*pb.ModelProto)
		m.Source.Graph = src
	} else {
		mp = &pb.ModelProto{IrVersion: proto.Int64(8), ProducerName: proto.String("chanopt")}
		for _, d := range sortedKeys(m.Opsets) {
			mp.OpsetImport = append(mp.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String(d), Version: proto.Int64(m.Opsets[d])})
		}
	}
	var gp *pb.GraphProto
	if src != nil {
		keep := [5]any{src.Node, src.Initializer, src.Input, src.Output, src.ValueInfo}
		src.Node, src.Initializer, src.Input, src.Output, src.ValueInfo = nil, nil, nil, nil, nil
		gp = proto.Clone(src).(*pb.GraphProto)
		src.Node = keep[0].([]*pb.NodeProto)
		src.Initializer = keep[1].([]*pb.TensorProto)
		src.Input = keep[2].([]*pb.ValueInfoProto)
		src.Output = keep[3].([]*pb.ValueInfoProto)
		src.ValueInfo = keep[4].([]*pb.ValueInfoProto)
	} else {
		gp = &pb.GraphProto{}
	}
	gp.Name = proto.String(g.Name)
	if g.Name == "" && (src == nil || src.Name == nil) {
		gp.Name = nil
	}
	mp.Graph = gp

	opset := m.Opset()
	inits := make(map[string]*Tensor, len(g.Inits))
	for k, v := range g.Inits {
		inits[k] = v
	}
	var newInits []string
	for _, n := range g.Nodes {
		inputs, skip := lowerParams(n, opset, g, inits, &newInits)
		np, err := nodeToProto(n, inputs, skip)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Label(), err)
		}
		gp.Node = append(gp.Node, np)
	}

	written := map[string]bool{}
	addInit := func(name string) {
		if t, ok := inits[name]; ok && !written[name] {
			written[name] = true
			gp.Initializer = append(gp.Initializer, t.ToProto())
		}
	}
	for _, name := range g.InitOrder {
		addInit(name)
	}
	for _, name := range sortedKeys(g.Inits) {
		addInit(name)
	}
	for _, name := range newInits {
		addInit(name)
	}

	// Inputs: keep the file's entries (also those naming initializers, as IR < 4 files do) that still exist.
	listed := map[string]bool{}
	if src != nil {
		for _, vi := range src.Input {
			name := vi.GetName()
			if g.IsInput(name) {
				gp.Input = append(gp.Input, valueInfoToProto(g.Values[name], vi))
				listed[name] = true
			} else if t, ok := inits[name]; ok {
				gp.Input = append(gp.Input, valueInfoToProto(&Value{Name: name, Type: t.Type, Shape: t.Shape()}, vi))
				listed[name] = true
			}
		}
	}
	for _, name := range g.Inputs {
		if !listed[name] {
			gp.Input = append(gp.Input, valueInfoToProto(g.valueOrEmpty(name), nil))
		}
	}
	if mp.GetIrVersion() > 0 && mp.GetIrVersion() < 4 {
		// Before IR 4 every initializer must also be a graph input.
		for _, tp := range gp.Initializer {
			if !listed[tp.GetName()] {
				t := inits[tp.GetName()]
				gp.Input = append(gp.Input, valueInfoToProto(&Value{Name: t.Name, Type: t.Type, Shape: t.Shape()}, nil))
				listed[t.Name] = true
			}
		}
	}
	srcOut := map[string]*pb.ValueInfoProto{}
	if src != nil {
		for _, vi := range src.Output {
			srcOut[vi.GetName()] = vi
		}
	}
	for _, name := range g.Outputs {
		gp.Output = append(gp.Output, valueInfoToProto(g.valueOrEmpty(name), srcOut[name]))
	}
	if src != nil {
		produced := map[string]bool{}
		for _, n := range g.Nodes {
			for _, o := range n.Outputs {
				produced[o] = true
			}
		}
		for _, vi := range src.ValueInfo {
			name := vi.GetName()
			if v, ok := g.Values[name]; ok && (produced[name] || inits[name] != nil || g.IsInput(name)) {
				gp.ValueInfo = append(gp.ValueInfo, valueInfoToProto(v, vi))
			}
		}
	}
	return mp, nil
}

func (g *Graph) valueOrEmpty(name string) *Value {
	if v, ok := g.Values[name]; ok {
		return v
	}
	return &Value{Name: name}
}

// valueInfoToProto writes a value's type, reusing src when the IR holds the same type.
func valueInfoToProto(v *Value, src *pb.ValueInfoProto) *pb.ValueInfoProto {
	if src != nil {
		if src.GetType().GetTensorType() == nil {
			return src // sequences, maps, optionals: the IR does not model them
		}
		old := valueFromProto(src)
		if old.Type == v.Type && old.Shape.Equal(v.Shape) {
			return src
		}
	}
	vi := &pb.ValueInfoProto{Name: proto.String(v.Name)}
	if src != nil {
		vi.DocString = src.DocString
	}
	tt := &pb.TypeProto_Tensor{}
	if v.Type != Undefined {
		tt.ElemType = proto.Int32(int32(v.Type))
	}
	if v.Shape != nil {
		sp := &pb.TensorShapeProto{}
		for _, d := range v.Shape {
			dp := &pb.TensorShapeProto_Dimension{}
			switch {
			case d.Known():
				dp.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: d.Size}
			case d.Param != "":
				dp.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
			}
			sp.Dim = append(sp.Dim, dp)
		}
		tt.Shape = sp
	}
	vi.Type = &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: tt}}
	return vi
}

// nodeToProto writes a node, returning its source proto when nothing changed.
func nodeToProto(n *Node, inputs []string, skip map[string]bool) (*pb.NodeProto, error) {
	np := &pb.NodeProto{Input: inputs, Output: n.Outputs, OpType: proto.String(n.OpType)}
	if n.Name != "" {
		np.Name = proto.String(n.Name)
	}
	if n.Domain != "" {
		np.Domain = proto.String(n.Domain)
	}
	src := n.Source
	same := src != nil && src.GetName() == n.Name && src.GetOpType() == n.OpType && normDomain(src.GetDomain()) == n.Domain &&
		slices.Equal(src.Input, inputs) && slices.Equal(src.Output, n.Outputs)
	if src != nil {
		np.DocString = src.DocString
		if src.Domain != nil && n.Domain == normDomain(src.GetDomain()) {
			np.Domain = src.Domain
		}
		if src.Name != nil && src.GetName() == n.Name {
			np.Name = src.Name
		}
	}
	// Attributes in the source's order first, then new ones by name.
	done := map[string]bool{}
	emit := func(name string) error {
		a, ok := n.Attrs[name]
		if !ok || skip[name] || done[name] {
			return nil
		}
		done[name] = true
		ap, reused, err := attrToProto(name, a)
		if err != nil {
			return fmt.Errorf("attribute %s: %w", name, err)
		}
		if !reused {
			same = false
		}
		np.Attribute = append(np.Attribute, ap)
		return nil
	}
	if src != nil {
		for _, ap := range src.Attribute {
			if err := emit(ap.GetName()); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range sortedKeys(n.Attrs) {
		if err := emit(name); err != nil {
			return nil, err
		}
	}
	if src != nil && len(np.Attribute) != len(src.Attribute) {
		same = false
	}
	if same {
		return src, nil
	}
	return np, nil
}

func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

// attrToProto writes an attribute; reused reports that the source proto still holds the same value.
func attrToProto(name string, a *Attr) (ap *pb.AttributeProto, reused bool, err error) {
	if a.Raw != nil && a.Raw.GetName() == name {
		if old, err := attrFromProto(a.Raw); err == nil && attrEqual(old, a) {
			return a.Raw, true, nil
		}
	}
	ap = &pb.AttributeProto{Name: proto.String(name)}
	if a.Raw != nil {
		ap.DocString = a.Raw.DocString
	}
	set := func(t pb.AttributeProto_AttributeType) { ap.Type = t.Enum() }
	switch a.Kind {
	case AttrFloat:
		ap.F = proto.Float32(a.F)
		set(pb.AttributeProto_FLOAT)
	case AttrInt:
		ap.I = proto.Int64(a.I)
		set(pb.AttributeProto_INT)
	case AttrString:
		ap.S = []byte(a.S)
		set(pb.AttributeProto_STRING)
	case AttrTensor:
		ap.T = a.T.ToProto()
		set(pb.AttributeProto_TENSOR)
	case AttrFloats:
		ap.Floats = append([]float32{}, a.Floats...)
		set(pb.AttributeProto_FLOATS)
	case AttrInts:
		ap.Ints = append([]int64{}, a.Ints...)
		set(pb.AttributeProto_INTS)
	case AttrStrings:
		for _, s := range a.Strings {
			ap.Strings = append(ap.Strings, []byte(s))
		}
		set(pb.AttributeProto_STRINGS)
	default:
		if a.Raw == nil {
			return nil, false, fmt.Errorf("no value")
		}
		return a.Raw, true, nil
	}
	return ap, false, nil
}

func attrEqual(a, b *Attr) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case AttrFloat:
		return a.F == b.F || (a.F != a.F && b.F != b.F)
	case AttrInt:
		return a.I == b.I
	case AttrString:
		return a.S == b.S
	case AttrTensor:
		return b.T.Unchanged() && a.T.Source == b.T.Source
	case AttrFloats:
		if len(a.Floats) != len(b.Floats) {
			return false
		}
		for i := range a.Floats {
			if a.Floats[i] != b.Floats[i] {
				return false
			}
		}
		return true
	case AttrInts:
		return len(a.Ints) == len(b.Ints) && bytes.Equal(int64Bytes(a.Ints), int64Bytes(b.Ints))
	case AttrStrings:
		return slices.Equal(a.Strings, b.Strings)
	}
	return true
}

func int64Bytes(v []int64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		for i := 0; i < 8; i++ {
			b = append(b, byte(x>>(8*i)))
		}
	}
	return b
}

package onnx

import (
	"fmt"
	"sort"

	"github.com/chanopt/chanopt/onnx/pb"
)

// DataType is an ONNX tensor element type; the numbers are the ONNX ones.
type DataType int32

// The element types the IR distinguishes. Others keep their ONNX number.
const (
	Undefined DataType = 0
	Float     DataType = 1
	Uint8     DataType = 2
	Int8      DataType = 3
	Uint16    DataType = 4
	Int16     DataType = 5
	Int32     DataType = 6
	Int64     DataType = 7
	String    DataType = 8
	Bool      DataType = 9
	Float16   DataType = 10
	Double    DataType = 11
	Uint32    DataType = 12
	Uint64    DataType = 13
	BFloat16  DataType = 16
)

var dataTypeNames = map[DataType]string{
	Undefined: "undefined", Float: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16",
	Int16: "int16", Int32: "int32", Int64: "int64", String: "string", Bool: "bool",
	Float16: "float16", Double: "float64", Uint32: "uint32", Uint64: "uint64", BFloat16: "bfloat16",
}

func (d DataType) String() string {
	if s, ok := dataTypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// IsFloat reports whether values of this type are held as float32 in the IR.
func (d DataType) IsFloat() bool { return d == Float || d == Float16 || d == Double || d == BFloat16 }

// IsInt reports whether values of this type are held as int64 in the IR.
func (d DataType) IsInt() bool {
	switch d {
	case Uint8, Int8, Uint16, Int16, Int32, Int64, Bool, Uint32, Uint64:
		return true
	}
	return false
}

// Dim is one dimension of a shape: a known size, a named symbol, or unknown.
type Dim struct {
	Size  int64  // >= 0 when known, -1 when not
	Param string // the symbol ("N", "batch") when Size is unknown and the dim is named
}

// Known reports whether the dim has a concrete size.
func (d Dim) Known() bool { return d.Size >= 0 }

func (d Dim) String() string {
	switch {
	case d.Size >= 0:
		return fmt.Sprint(d.Size)
	case d.Param != "":
		return d.Param
	}
	return "?"
}

// D makes a known dim.
func D(n int64) Dim { return Dim{Size: n} }

// Unknown is a dim of unknown size with no name.
var Unknown = Dim{Size: -1}

// Shape is a tensor shape. A nil Shape means the rank itself is unknown.
type Shape []Dim

// ShapeOf makes a fully known shape.
func ShapeOf(dims ...int64) Shape {
	s := make(Shape, len(dims))
	for i, d := range dims {
		s[i] = D(d)
	}
	return s
}

// Static reports whether every dim is known.
func (s Shape) Static() bool {
	if s == nil {
		return false
	}
	for _, d := range s {
		if !d.Known() {
			return false
		}
	}
	return true
}

// Sizes returns the dims as int64, with -1 for unknown ones.
func (s Shape) Sizes() []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = d.Size
	}
	return out
}

// NumElements is the product of the dims, or -1 if any is unknown.
func (s Shape) NumElements() int64 {
	if s == nil {
		return -1
	}
	n := int64(1)
	for _, d := range s {
		if !d.Known() {
			return -1
		}
		n *= d.Size
	}
	return n
}

// Equal reports whether two shapes have the same rank and the same dims.
func (s Shape) Equal(o Shape) bool {
	if (s == nil) != (o == nil) || len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

func (s Shape) String() string {
	if s == nil {
		return "[?]"
	}
	b := []byte{'['}
	for i, d := range s {
		if i > 0 {
			b = append(b, 'x')
		}
		b = append(b, d.String()...)
	}
	return string(append(b, ']'))
}

// Clone copies the shape.
func (s Shape) Clone() Shape {
	if s == nil {
		return nil
	}
	return append(Shape{}, s...)
}

// Value is a named edge of the graph: a graph input, a node output, or an initializer.
type Value struct {
	Name  string
	Type  DataType
	Shape Shape // nil while unknown
}

// AttrKind says which field of an Attr holds its value.
type AttrKind int

// The attribute kinds the IR holds typed. Other kinds (graphs, type protos, sparse tensors) stay as Raw.
const (
	AttrFloat AttrKind = iota + 1
	AttrInt
	AttrString
	AttrTensor
	AttrFloats
	AttrInts
	AttrStrings
	AttrOther
)

// Attr is a node attribute with its value typed.
type Attr struct {
	Kind    AttrKind
	F       float32
	I       int64
	S       string
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings []string
	// Raw is the attribute as read, kept to write it back unchanged when the value above did not change
	// (and the only carrier of graph, sparse-tensor and type attributes).
	Raw *pb.AttributeProto
}

// Node is one operator application.
type Node struct {
	Name    string
	OpType  string
	Domain  string // "" for the default ONNX domain
	Inputs  []string
	Outputs []string
	Attrs   map[string]*Attr
	// ParamNames remembers, per attribute that normalisation lifted out of a constant input
	// (Clip min, Split split, Reshape shape, ...), the name that input had, so export can reuse it.
	ParamNames map[string]string
	// Source is the node as read; export reuses it when nothing about the node changed.
	Source *pb.NodeProto
}

// Tensor is a constant: an initializer, or a Constant node's value after normalisation.
// Floating-point tensors of every width are held as float32 in Floats, integer and bool tensors as
// int64 in Ints; anything else (strings, complex) stays encoded in Source.
//
// Float32 data read from raw_data on a little-endian machine is not copied: Floats is a view of
// Source's raw_data bytes (when they are 4-byte aligned, which ReadFile arranges), which are
// themselves a view of the buffer the model file was read into. Writing into
// Floats in place therefore also writes Source's raw_data, and export writes the new values; other
// holders of the same Source (a Model.Clone) have their own copies of the data and are compared with
// the changed bytes, so they are re-encoded. Transforms may also replace the data slices; export
// notices either way (see Unchanged) and re-encodes.
type Tensor struct {
	Name   string
	Type   DataType
	Dims   []int64
	Floats []float32
	Ints   []int64
	// Source is the tensor as read. sum is the checksum of its data at import, for sources that
	// Unchanged does not compare with directly (see rawFloatSource).
	Source *pb.TensorProto
	sum    uint64
}

// NumElements is the product of Dims.
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Shape returns the dims as a static Shape.
func (t *Tensor) Shape() Shape { return ShapeOf(t.Dims...) }

// Graph is the main graph of a model in IR form.
type Graph struct {
	Name    string
	Nodes   []*Node            // in a topological order after Import
	Inputs  []string           // real inputs only (not initializers), in file order
	Outputs []string           // in file order
	Values  map[string]*Value  // every named edge, including initializers
	Inits   map[string]*Tensor // initializers by name
	// InitOrder keeps the file's initializer order so export is stable; new ones are appended by name.
	InitOrder []string
	// LiftedFloats records the element count of each floating-point constant that import lifted into
	// node attributes, so params can still count it (it is written back as an input on export).
	LiftedFloats map[string]int64
}

// Model is an ONNX model in IR form.
type Model struct {
	Graph  *Graph
	Opsets map[string]int64 // domain ("" = ai.onnx) -> version
	// Source is the model as read; export keeps everything the IR does not represent from it.
	Source *pb.ModelProto
	// Path is where the model was loaded from (for messages and external data), if anywhere.
	Path string
}

// Opset returns the version of the default ONNX domain the model imports.
func (m *Model) Opset() int64 {
	if v, ok := m.Opsets[""]; ok {
		return v
	}
	return m.Opsets["ai.onnx"]
}

// Producers maps each value name to the node that outputs it.
func (g *Graph) Producers() map[string]*Node {
	p := make(map[string]*Node, len(g.Nodes)*2)
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				p[o] = n
			}
		}
	}
	return p
}

// Consumers maps each value name to the nodes that read it, in graph order.
func (g *Graph) Consumers() map[string][]*Node {
	c := make(map[string][]*Node, len(g.Nodes)*2)
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == "" {
				continue
			}
			if l := c[in]; len(l) > 0 && l[len(l)-1] == n {
				continue // a node reading the same value twice is listed once
			}
			c[in] = append(c[in], n)
		}
	}
	return c
}

// IsOutput reports whether name is a graph output.
func (g *Graph) IsOutput(name string) bool {
	for _, o := range g.Outputs {
		if o == name {
			return true
		}
	}
	return false
}

// IsInput reports whether name is a real graph input.
func (g *Graph) IsInput(name string) bool {
	for _, o := range g.Inputs {
		if o == name {
			return true
		}
	}
	return false
}

// SortTopological orders g.Nodes so every node comes after the producers of its inputs,
// keeping the file order among independent nodes. It fails on a cycle.
func (g *Graph) SortTopological() error {
	prod := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				prod[o] = i
			}
		}
	}
	indeg := make([]int, len(g.Nodes))
	succ := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		seen := map[int]bool{}
		for _, in := range nodeReads(n) {
			if p, ok := prod[in]; ok && p != i && !seen[p] {
				seen[p] = true
				indeg[i]++
				succ[p] = append(succ[p], i)
			}
		}
	}
	// A min-heap on file index keeps the original order wherever it is already valid.
	ready := make([]int, 0, len(g.Nodes))
	for i := range g.Nodes {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	out := make([]*Node, 0, len(g.Nodes))
	for len(ready) > 0 {
		sort.Ints(ready)
		i := ready[0]
		ready = ready[1:]
		out = append(out, g.Nodes[i])
		for _, s := range succ[i] {
			indeg[s]--
			if indeg[s] == 0 {
				ready = append(ready, s)
			}
		}
	}
	if len(out) != len(g.Nodes) {
		for i, d := range indeg {
			if d > 0 {
				return fmt.Errorf("graph has a cycle through node %s", g.Nodes[i].Label())
			}
		}
	}
	g.Nodes = out
	return nil
}

// nodeReads lists the names a node reads, including outer-scope names its subgraphs use.
func nodeReads(n *Node) []string {
	reads := append([]string(nil), n.Inputs...)
	for _, a := range n.Attrs {
		if a.Raw == nil {
			continue
		}
		if a.Raw.G != nil {
			reads = append(reads, subgraphOuterReads(a.Raw.G)...)
		}
		for _, sg := range a.Raw.Graphs {
			reads = append(reads, subgraphOuterReads(sg)...)
		}
	}
	return reads
}

// subgraphOuterReads lists names a subgraph reads that it does not define itself.
func subgraphOuterReads(g *pb.GraphProto) []string {
	defined := map[string]bool{}
	for _, in := range g.Input {
		defined[in.GetName()] = true
	}
	for _, t := range g.Initializer {
		defined[t.GetName()] = true
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			defined[o] = true
		}
	}
	var out []string
	for _, n := range g.Node {
		for _, in := range n.Input {
			if in != "" && !defined[in] {
				out = append(out, in)
			}
		}
		for _, a := range n.Attribute {
			if a.G != nil {
				out = append(out, subgraphOuterReads(a.G)...)
			}
			for _, sg := range a.Graphs {
				out = append(out, subgraphOuterReads(sg)...)
			}
		}
	}
	return out
}

// Label names a node for messages: its name, or its first output when unnamed.
func (n *Node) Label() string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 {
		return n.Outputs[0]
	}
	return n.OpType
}

// Input returns the i-th input name, or "" when the node has fewer inputs.
func (n *Node) Input(i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

// Int returns an int attribute, or def when absent.
func (n *Node) Int(name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrInt {
		return a.I
	}
	return def
}

// Float returns a float attribute, or def when absent.
func (n *Node) Float(name string, def float32) float32 {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrFloat {
		return a.F
	}
	return def
}

// String returns a string attribute, or def when absent.
func (n *Node) String(name, def string) string {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrString {
		return a.S
	}
	return def
}

// Ints returns an ints attribute, or nil when absent.
func (n *Node) Ints(name string) []int64 {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrInts {
		return a.Ints
	}
	return nil
}

// Floats returns a floats attribute, or nil when absent.
func (n *Node) Floats(name string) []float32 {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrFloats {
		return a.Floats
	}
	return nil
}

// Has reports whether the node carries the attribute.
func (n *Node) Has(name string) bool { _, ok := n.Attrs[name]; return ok }

// SetInt sets an int attribute.
func (n *Node) SetInt(name string, v int64) { n.setAttr(name, &Attr{Kind: AttrInt, I: v}) }

// SetFloat sets a float attribute.
func (n *Node) SetFloat(name string, v float32) { n.setAttr(name, &Attr{Kind: AttrFloat, F: v}) }

// SetInts sets an ints attribute.
func (n *Node) SetInts(name string, v []int64) { n.setAttr(name, &Attr{Kind: AttrInts, Ints: v}) }

// SetFloats sets a floats attribute.
func (n *Node) SetFloats(name string, v []float32) {
	n.setAttr(name, &Attr{Kind: AttrFloats, Floats: v})
}

func (n *Node) setAttr(name string, a *Attr) {
	if n.Attrs == nil {
		n.Attrs = map[string]*Attr{}
	}
	if old, ok := n.Attrs[name]; ok && old.Raw != nil {
		a.Raw = old.Raw // export compares the value with Raw and keeps Raw when equal
	}
	n.Attrs[name] = a
}

// Clone deep-copies the model's IR (tensor data included); Source protos are shared (the copy's
// tensors no longer view their raw_data, so in-place changes to either model stay private to it).
func (m *Model) Clone() *Model {
	c := &Model{Opsets: map[string]int64{}, Source: m.Source, Path: m.Path}
	for k, v := range m.Opsets {
		c.Opsets[k] = v
	}
	g := m.Graph
	cg := &Graph{
		Name:         g.Name,
		Inputs:       append([]string(nil), g.Inputs...),
		Outputs:      append([]string(nil), g.Outputs...),
		Values:       make(map[string]*Value, len(g.Values)),
		Inits:        make(map[string]*Tensor, len(g.Inits)),
		InitOrder:    append([]string(nil), g.InitOrder...),
		LiftedFloats: map[string]int64{},
	}
	for k, v := range g.LiftedFloats {
		cg.LiftedFloats[k] = v
	}
	for k, v := range g.Values {
		cv := *v
		cv.Shape = v.Shape.Clone()
		cg.Values[k] = &cv
	}
	for k, t := range g.Inits {
		cg.Inits[k] = t.Clone()
	}
	for _, n := range g.Nodes {
		cg.Nodes = append(cg.Nodes, n.Clone())
	}
	c.Graph = cg
	return c
}

// Clone deep-copies a node.
func (n *Node) Clone() *Node {
	c := *n
	c.Inputs = append([]string(nil), n.Inputs...)
	c.Outputs = append([]string(nil), n.Outputs...)
	c.Attrs = make(map[string]*Attr, len(n.Attrs))
	for k, a := range n.Attrs {
		ca := *a
		ca.Floats = append([]float32(nil), a.Floats...)
		ca.Ints = append([]int64(nil), a.Ints...)
		ca.Strings = append([]string(nil), a.Strings...)
		if a.T != nil {
			ca.T = a.T.Clone()
		}
		c.Attrs[k] = &ca
	}
	if n.ParamNames != nil {
		c.ParamNames = make(map[string]string, len(n.ParamNames))
		for k, v := range n.ParamNames {
			c.ParamNames[k] = v
		}
	}
	return &c
}

// Clone deep-copies a tensor's data.
func (t *Tensor) Clone() *Tensor {
	c := *t
	c.Dims = append([]int64(nil), t.Dims...)
	if t.Floats != nil {
		c.Floats = append([]float32(nil), t.Floats...)
	}
	if t.Ints != nil {
		c.Ints = append([]int64(nil), t.Ints...)
	}
	return &c
}

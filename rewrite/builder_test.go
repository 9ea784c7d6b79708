package rewrite_test

import (
	"math/rand/v2"

	"github.com/chanopt/chanopt/onnx"
)

// graphBuilder assembles a small model in the IR form onnx.Load produces (argument inputs such as
// Reshape targets and Slice bounds held as attributes), with random weights, for the rule tests.
// Every node is named after its single (first) output.
type graphBuilder struct {
	g     *onnx.Graph
	rng   *rand.Rand
	opset int64
}

func newGraph(seed uint64) *graphBuilder {
	return &graphBuilder{
		g:     &onnx.Graph{Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}},
		rng:   rand.New(rand.NewPCG(seed, 17)),
		opset: 13,
	}
}

// input declares a float graph input of static shape.
func (b *graphBuilder) input(name string, dims ...int64) string {
	b.g.Inputs = append(b.g.Inputs, name)
	b.g.Values[name] = &onnx.Value{Name: name, Type: onnx.Float, Shape: onnx.ShapeOf(dims...)}
	return name
}

// weight adds a constant of random values in [-1, 1).
func (b *graphBuilder) weight(name string, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(2*b.rng.Float64() - 1)
	}
	return b.constant(name, dims, data)
}

func (b *graphBuilder) constant(name string, dims []int64, data []float32) string {
	b.g.Inits[name] = onnx.NewFloatTensor(name, dims, data)
	b.g.InitOrder = append(b.g.InitOrder, name)
	b.g.Values[name] = &onnx.Value{Name: name, Type: onnx.Float, Shape: onnx.ShapeOf(dims...)}
	return name
}

// attr is one node attribute.
type attr struct {
	name string
	a    *onnx.Attr
}

func ints(name string, v ...int64) attr {
	return attr{name, &onnx.Attr{Kind: onnx.AttrInts, Ints: v}}
}

func integer(name string, v int64) attr { return attr{name, &onnx.Attr{Kind: onnx.AttrInt, I: v}} }

func floats(name string, v ...float32) attr {
	return attr{name, &onnx.Attr{Kind: onnx.AttrFloats, Floats: v}}
}

func text(name, v string) attr { return attr{name, &onnx.Attr{Kind: onnx.AttrString, S: v}} }

// node adds a node named after its first output and returns that output.
func (b *graphBuilder) node(op string, ins, outs []string, attrs ...attr) string {
	n := &onnx.Node{Name: outs[0], OpType: op, Inputs: ins, Outputs: outs, Attrs: map[string]*onnx.Attr{}}
	for _, a := range attrs {
		n.Attrs[a.name] = a.a
	}
	b.g.Nodes = append(b.g.Nodes, n)
	return outs[0]
}

// op adds a node with one output named name.
func (b *graphBuilder) op(op, name string, ins []string, attrs ...attr) string {
	return b.node(op, ins, []string{name}, attrs...)
}

// conv adds a k×k Conv with "same" padding, a bias, and group groups: name.w is
// cout × cin/groups × k × k.
func (b *graphBuilder) conv(name, x string, cin, cout, k, groups int64) string {
	w := b.weight(name+".w", cout, cin/groups, k, k)
	bias := b.weight(name+".b", cout)
	p := k / 2
	return b.op("Conv", name, []string{x, w, bias}, ints("kernel_shape", k, k), ints("pads", p, p, p, p),
		integer("group", groups))
}

// batchNorm adds a BatchNormalization with positive variances.
func (b *graphBuilder) batchNorm(name, x string, c int64) string {
	gamma, beta, mean := b.weight(name+".gamma", c), b.weight(name+".beta", c), b.weight(name+".mean", c)
	v := make([]float32, c)
	for i := range v {
		v[i] = 0.5 + b.rng.Float32()
	}
	variance := b.constant(name+".var", []int64{c}, v)
	return b.op("BatchNormalization", name, []string{x, gamma, beta, mean, variance})
}

func (b *graphBuilder) output(name string) { b.g.Outputs = append(b.g.Outputs, name) }

func (b *graphBuilder) model() *onnx.Model {
	return &onnx.Model{Opsets: map[string]int64{"": b.opset}, Graph: b.g}
}

package engine

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// Finite-difference checks of every backward.
//
// Each case is a small model built in code around one op (a few for the shape-arithmetic
// cases). The loss is L = Σ r·y with r fixed and random; Backward(r) gives ∂L/∂x and ∂L/∂θ for
// every float initializer θ (all are made trainable). The forward runs in float32, so the check
// uses central differences with a step h = 1e-2 on inputs of magnitude ~1, L summed in float64,
// and accepts |analytic − numeric| ≤ 2e-3·max(1, max|grad|) + 2e-2·|numeric|: float32 rounding of
// L contributes ~1e-4 to the numeric derivative at this step and the O(h²) truncation of smooth ops
// ~1e-5. Piecewise-linear ops (Relu, Clip, max pooling, ...) get inputs kept at least 0.05 away
// from their kinks and ties, so the differences never straddle one. Up to 16 elements of the
// input and of each parameter are checked per case.

const (
	fdStep = 1e-2
	fdAtol = 2e-3
	fdRtol = 2e-2
)

// gm builds a model in code.
type gm struct {
	m   *onnx.Model
	rng *rand.Rand
	k   int
}

func newGM(opset int64) *gm {
	return &gm{rng: rand.New(rand.NewSource(1)), m: &onnx.Model{Opsets: map[string]int64{"": opset},
		Graph: &onnx.Graph{Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}}}}
}

func (b *gm) input(name string, shape ...int) string {
	b.m.Graph.Inputs = append(b.m.Graph.Inputs, name)
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	b.m.Graph.Values[name] = &onnx.Value{Name: name, Type: onnx.Float, Shape: onnx.ShapeOf(dims...)}
	return name
}

// param adds a float initializer with values uniform in [lo, hi).
func (b *gm) param(name string, shape []int, lo, hi float32) string {
	data := make([]float32, numel(shape))
	for i := range data {
		data[i] = lo + (hi-lo)*b.rng.Float32()
	}
	return b.paramData(name, shape, data)
}

func (b *gm) paramData(name string, shape []int, data []float32) string {
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	b.m.Graph.Inits[name] = &onnx.Tensor{Name: name, Type: onnx.Float, Dims: dims, Floats: data}
	b.m.Graph.InitOrder = append(b.m.Graph.InitOrder, name)
	return name
}

func (b *gm) ints(name string, shape []int, vals ...int64) string {
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	b.m.Graph.Inits[name] = &onnx.Tensor{Name: name, Type: onnx.Int64, Dims: dims, Ints: vals}
	b.m.Graph.InitOrder = append(b.m.Graph.InitOrder, name)
	return name
}

type attr func(*onnx.Node)

func ai(name string, v ...int64) attr    { return func(n *onnx.Node) { n.SetInts(name, v) } }
func a1(name string, v int64) attr       { return func(n *onnx.Node) { n.SetInt(name, v) } }
func af(name string, v float32) attr     { return func(n *onnx.Node) { n.SetFloat(name, v) } }
func afs(name string, v ...float32) attr { return func(n *onnx.Node) { n.SetFloats(name, v) } }
func as(name, v string) attr {
	return func(n *onnx.Node) {
		if n.Attrs == nil {
			n.Attrs = map[string]*onnx.Attr{}
		}
		n.Attrs[name] = &onnx.Attr{Kind: onnx.AttrString, S: v}
	}
}

// op adds a node with nOut fresh outputs and returns them.
func (b *gm) op(opType string, ins []string, nOut int, attrs ...attr) []string {
	n := &onnx.Node{OpType: opType, Inputs: ins, Name: fmt.Sprintf("%s_%d", opType, b.k)}
	for i := 0; i < nOut; i++ {
		n.Outputs = append(n.Outputs, fmt.Sprintf("v%d_%d", b.k, i))
	}
	b.k++
	for _, a := range attrs {
		a(n)
	}
	b.m.Graph.Nodes = append(b.m.Graph.Nodes, n)
	return n.Outputs
}

func (b *gm) output(name string) { b.m.Graph.Outputs = append(b.m.Graph.Outputs, name) }

func allTrainable(*onnx.Node, int) bool { return true }

// randTensor is uniform in [lo, hi).
func randTensor(rng *rand.Rand, lo, hi float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.Data {
		t.Data[i] = lo + (hi-lo)*rng.Float32()
	}
	return t
}

// away moves values within 0.05 of a kink by 0.1.
func away(data []float32, kinks ...float32) {
	for i, v := range data {
		for _, k := range kinks {
			if d := v - k; d > -0.05 && d < 0.05 {
				if d >= 0 {
					data[i] = k + 0.05 + d
				} else {
					data[i] = k - 0.05 + d
				}
			}
		}
	}
}

// distinct replaces the values by a shuffled grid spaced 0.06 apart (no near-ties for max).
func distinct(rng *rand.Rand, data []float32) {
	n := len(data)
	p := rng.Perm(n)
	for i := range data {
		data[i] = (float32(p[i]) - float32(n)/2) * 0.06
	}
}

// fdCheck compares the trainer's gradients with central differences for the model's first
// output under L = Σ r·y.
func fdCheck(t *testing.T, m *onnx.Model, x *Tensor, opt TrainOptions) {
	t.Helper()
	if opt.Trainable == nil {
		opt.Trainable = allTrainable
	}
	opt.Threads = 2
	tr, err := NewTrainer(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewSource(7))
	y, err := tr.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	r := randTensor(rng, -1, 1, y.Shape...)
	loss := func() float64 {
		y, err := tr.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, v := range y.Data[:y.Len()] {
			s += float64(v) * float64(r.Data[i])
		}
		return s
	}
	tr.ZeroGrad()
	if _, err := tr.Forward(x); err != nil {
		t.Fatal(err)
	}
	if err := tr.Backward(r); err != nil {
		t.Fatal(err)
	}
	type target struct {
		name string
		val  []float32
		grad []float32
	}
	var targets []target
	if gx := tr.InputGrad(); gx != nil {
		targets = append(targets, target{"input", x.Data, append([]float32(nil), gx.Data...)})
	}
	for _, p := range tr.Params() {
		targets = append(targets, target{p.Name, p.Value, append([]float32(nil), p.Grad...)})
	}
	if len(targets) == 0 {
		t.Fatal("nothing to check")
	}
	checked := 0
	for _, tg := range targets {
		scale := 1.0
		for _, g := range tg.grad {
			scale = math.Max(scale, math.Abs(float64(g)))
		}
		idx := rng.Perm(len(tg.val))
		if len(idx) > 16 {
			idx = idx[:16]
		}
		for _, i := range idx {
			v := tg.val[i]
			tg.val[i] = v + fdStep
			lp := loss()
			tg.val[i] = v - fdStep
			lm := loss()
			tg.val[i] = v
			num := (lp - lm) / (2 * fdStep)
			ana := float64(tg.grad[i])
			if math.Abs(ana-num) > fdAtol*scale+fdRtol*math.Abs(num) {
				t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", tg.name, i, ana, num)
			}
			checked++
		}
	}
	loss() // leave the values as they were
	if checked == 0 {
		t.Fatal("no element checked")
	}
}

type gradCase struct {
	name  string
	build func(b *gm) (*onnx.Model, *Tensor)
	opt   TrainOptions
}

// single makes a model of one node over input x (and parameters made by params).
func single(opType string, xShape []int, params func(b *gm) []string, attrs ...attr) func(b *gm) (*onnx.Model, *Tensor) {
	return func(b *gm) (*onnx.Model, *Tensor) {
		x := b.input("x", xShape...)
		ins := []string{x}
		if params != nil {
			ins = append(ins, params(b)...)
		}
		out := b.op(opType, ins, 1, attrs...)
		b.output(out[0])
		return b.m, randTensor(b.rng, -1, 1, xShape...)
	}
}

func convParams(w []int, bias bool) func(b *gm) []string {
	return func(b *gm) []string {
		p := []string{b.param("w", w, -0.5, 0.5)}
		if bias {
			p = append(p, b.param("b", w[:1], -0.5, 0.5))
		}
		return p
	}
}

// convTParams makes ConvTranspose's W [C, M/group, k...] and bias [M].
func convTParams(w []int, group int, bias bool) func(b *gm) []string {
	return func(b *gm) []string {
		p := []string{b.param("w", w, -0.5, 0.5)}
		if bias {
			p = append(p, b.param("b", []int{w[1] * group}, -0.5, 0.5))
		}
		return p
	}
}

func TestGradConv(t *testing.T) {
	cases := []gradCase{
		{"3x3 pad1", single("Conv", []int{2, 3, 7, 6}, convParams([]int{4, 3, 3, 3}, true), ai("pads", 1, 1, 1, 1)), TrainOptions{}},
		{"3x3 stride2 asym pads", single("Conv", []int{2, 3, 8, 7}, convParams([]int{5, 3, 3, 3}, true), ai("pads", 1, 0, 2, 1), ai("strides", 2, 2)), TrainOptions{}},
		{"dilation2", single("Conv", []int{2, 2, 9, 8}, convParams([]int{3, 2, 3, 3}, false), ai("pads", 2, 2, 2, 2), ai("dilations", 2, 2)), TrainOptions{}},
		{"dilation stride", single("Conv", []int{1, 3, 11, 9}, convParams([]int{2, 3, 3, 2}, true), ai("pads", 1, 2, 0, 1), ai("dilations", 2, 1), ai("strides", 2, 3)), TrainOptions{}},
		{"groups3", single("Conv", []int{2, 6, 6, 6}, convParams([]int{9, 2, 3, 3}, true), ai("pads", 1, 1, 1, 1), a1("group", 3)), TrainOptions{}},
		{"groups2 stride2 wide", single("Conv", []int{2, 16, 6, 5}, convParams([]int{6, 8, 3, 3}, true), ai("pads", 1, 1, 1, 1), ai("strides", 2, 2), a1("group", 2)), TrainOptions{}},
		{"channels-last path", single("Conv", []int{3, 8, 6, 7}, convParams([]int{5, 8, 3, 3}, true), ai("pads", 1, 1, 1, 1)), TrainOptions{}},
		{"channels-last strided dilated", single("Conv", []int{2, 8, 9, 9}, convParams([]int{4, 8, 3, 3}, true), ai("pads", 2, 1, 0, 2), ai("strides", 2, 2), ai("dilations", 2, 1)), TrainOptions{}},
		{"depthwise", single("Conv", []int{2, 4, 6, 6}, convParams([]int{4, 1, 3, 3}, true), ai("pads", 1, 1, 1, 1), a1("group", 4)), TrainOptions{}},
		{"depthwise stride2", single("Conv", []int{2, 4, 7, 6}, convParams([]int{4, 1, 3, 3}, true), ai("pads", 1, 1, 1, 1), ai("strides", 2, 2), a1("group", 4)), TrainOptions{}},
		{"depthwise multiplier2", single("Conv", []int{2, 3, 5, 5}, convParams([]int{6, 1, 3, 3}, true), ai("pads", 1, 1, 1, 1), a1("group", 3)), TrainOptions{}},
		{"depthwise multiplier stride", single("Conv", []int{1, 3, 7, 7}, convParams([]int{6, 1, 3, 3}, true), ai("pads", 0, 1, 1, 0), ai("strides", 2, 2), ai("dilations", 1, 2), a1("group", 3)), TrainOptions{}},
		{"1x1 stride2", single("Conv", []int{2, 6, 7, 7}, convParams([]int{4, 6, 1, 1}, false), ai("strides", 2, 2)), TrainOptions{}},
		{"1x1 padded", single("Conv", []int{2, 3, 4, 4}, convParams([]int{2, 3, 1, 1}, true), ai("pads", 1, 1, 1, 1)), TrainOptions{}},
		{"same_upper stride2", single("Conv", []int{2, 3, 7, 6}, convParams([]int{2, 3, 3, 3}, true), as("auto_pad", "SAME_UPPER"), ai("strides", 2, 2)), TrainOptions{}},
		{"1-D", single("Conv", []int{2, 3, 9}, convParams([]int{4, 3, 3}, true), ai("pads", 1, 2), ai("strides", 2)), TrainOptions{}},
		{"1-D stride1", single("Conv", []int{2, 6, 9}, convParams([]int{4, 6, 3}, true), ai("pads", 1, 1), ai("dilations", 2)), TrainOptions{}},
	}
	runGradCases(t, cases)
}

func TestGradConvTranspose(t *testing.T) {
	cases := []gradCase{
		{"stride2 pad1 outpad1", single("ConvTranspose", []int{2, 3, 4, 5}, convTParams([]int{3, 4, 3, 3}, 1, true), ai("strides", 2, 2), ai("pads", 1, 1, 1, 1), ai("output_padding", 1, 1)), TrainOptions{}},
		{"groups2 dilation", single("ConvTranspose", []int{2, 4, 4, 4}, convTParams([]int{4, 3, 3, 2}, 2, true), a1("group", 2), ai("dilations", 2, 1), ai("pads", 0, 1, 1, 0)), TrainOptions{}},
		{"stride1 channels-last", single("ConvTranspose", []int{1, 8, 3, 4}, convTParams([]int{8, 6, 2, 2}, 1, false)), TrainOptions{}},
		{"1-D", single("ConvTranspose", []int{2, 3, 5}, convTParams([]int{3, 2, 3}, 1, true), ai("strides", 3), ai("pads", 1, 0)), TrainOptions{}},
	}
	runGradCases(t, cases)
}

func TestGradGemmMatMul(t *testing.T) {
	gemm := func(tA, tB bool, cShape []int, alpha, beta float32) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			m, k, n := 3, 4, 5
			xs := []int{m, k}
			if tA {
				xs = []int{k, m}
			}
			ws := []int{k, n}
			if tB {
				ws = []int{n, k}
			}
			x := b.input("x", xs...)
			ins := []string{x, b.param("w", ws, -1, 1)}
			if cShape != nil {
				ins = append(ins, b.param("c", cShape, -1, 1))
			}
			var ta, tb int64
			if tA {
				ta = 1
			}
			if tB {
				tb = 1
			}
			out := b.op("Gemm", ins, 1, a1("transA", ta), a1("transB", tb), af("alpha", alpha), af("beta", beta))
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}
	}
	matmul := func(xs, ws []int) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			out := b.op("MatMul", []string{x, b.param("w", ws, -1, 1)}, 1)
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}
	}
	cases := []gradCase{
		{"gemm", gemm(false, false, []int{5}, 1, 1), TrainOptions{}},
		{"gemm transA", gemm(true, false, []int{3, 5}, 1, 1), TrainOptions{}},
		{"gemm transB alpha beta", gemm(false, true, []int{1}, 0.7, 1.3), TrainOptions{}},
		{"gemm transA transB column bias", gemm(true, true, []int{3, 1}, 2, 0.5), TrainOptions{}},
		{"gemm no C", gemm(false, true, nil, 1, 1), TrainOptions{}},
		{"matmul 2-D", matmul([]int{3, 4}, []int{4, 5}), TrainOptions{}},
		{"matmul batched", matmul([]int{2, 3, 4}, []int{4, 5}), TrainOptions{}},
		{"matmul broadcast", matmul([]int{2, 1, 3, 4}, []int{3, 4, 2}), TrainOptions{}},
		{"matmul 1-D", matmul([]int{4}, []int{2, 4, 3}), TrainOptions{}},
		{"matmul vector right", matmul([]int{2, 3, 4}, []int{4}), TrainOptions{}},
	}
	runGradCases(t, cases)
}

func TestGradBatchNorm(t *testing.T) {
	bn := func(shape []int) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			c := []int{shape[1]}
			x := b.input("x", shape...)
			out := b.op("BatchNormalization", []string{x, b.param("scale", c, 0.5, 1.5), b.param("bias", c, -1, 1),
				b.param("mean", c, -0.3, 0.3), b.param("var", c, 0.5, 1.5)}, 1, af("epsilon", 1e-3), af("momentum", 0.8))
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, shape...)
		}
	}
	cases := []gradCase{
		{"eval", bn([]int{3, 4, 3, 5}), TrainOptions{}},
		{"eval 2-D", bn([]int{5, 3}), TrainOptions{}},
		{"train", bn([]int{3, 4, 3, 5}), TrainOptions{BNMode: "train"}},
		{"train 3-D", bn([]int{4, 2, 6}), TrainOptions{BNMode: "train"}},
	}
	runGradCases(t, cases)
}

func TestGradActivations(t *testing.T) {
	act := func(op string, lo, hi float32, kinks []float32, attrs ...attr) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			shape := []int{2, 3, 4, 5}
			x := b.input("x", shape...)
			out := b.op(op, []string{x}, 1, attrs...)
			b.output(out[0])
			xt := randTensor(b.rng, lo, hi, shape...)
			away(xt.Data, kinks...)
			return b.m, xt
		}
	}
	cases := []gradCase{
		{"Relu", act("Relu", -1, 1, []float32{0}), TrainOptions{}},
		{"LeakyRelu", act("LeakyRelu", -1, 1, []float32{0}, af("alpha", 0.1)), TrainOptions{}},
		{"Clip", act("Clip", -1, 1, []float32{-0.5, 0.6}, af("min", -0.5), af("max", 0.6)), TrainOptions{}},
		{"Clip relu6", act("Clip", -3, 8, []float32{0, 6}, af("min", 0), af("max", 6)), TrainOptions{}},
		{"Sigmoid", act("Sigmoid", -3, 3, nil), TrainOptions{}},
		{"HardSigmoid", act("HardSigmoid", -4, 4, []float32{-2.5, 2.5}), TrainOptions{}},
		{"HardSigmoid alpha", act("HardSigmoid", -4, 4, []float32{-1.25, 3.75}, af("alpha", 0.4), af("beta", 0.5)), TrainOptions{}},
		{"HardSwish", act("HardSwish", -5, 5, []float32{-3, 3}), TrainOptions{}},
		{"Tanh", act("Tanh", -2, 2, nil), TrainOptions{}},
		{"Softplus", act("Softplus", -3, 3, nil), TrainOptions{}},
		{"Elu", act("Elu", -2, 2, []float32{0}, af("alpha", 0.7)), TrainOptions{}},
		{"Selu", act("Selu", -2, 2, []float32{0}), TrainOptions{}},
		{"Celu", act("Celu", -2, 2, []float32{0}, af("alpha", 1.5)), TrainOptions{}},
		{"Softsign", act("Softsign", -2, 2, []float32{0}), TrainOptions{}},
		{"Exp", act("Exp", -1, 1, nil), TrainOptions{}},
		{"Log", act("Log", 0.5, 2, nil), TrainOptions{}},
		{"Sqrt", act("Sqrt", 0.5, 2, nil), TrainOptions{}},
		{"Abs", act("Abs", -1, 1, []float32{0}), TrainOptions{}},
		{"Neg", act("Neg", -1, 1, nil), TrainOptions{}},
		{"Reciprocal", act("Reciprocal", 0.5, 2, nil), TrainOptions{}},
		{"Gelu", act("Gelu", -2, 2, nil), TrainOptions{}},
		{"Mish", act("Mish", -2, 2, nil), TrainOptions{}},
		{"Sin", act("Sin", -2, 2, nil), TrainOptions{}},
		{"Cos", act("Cos", -2, 2, nil), TrainOptions{}},
		{"Softmax", act("Softmax", -2, 2, nil, a1("axis", 1)), TrainOptions{}},
		{"Softmax last", act("Softmax", -2, 2, nil), TrainOptions{}},
		{"LogSoftmax", act("LogSoftmax", -2, 2, nil, a1("axis", 2)), TrainOptions{}},
		{"PRelu", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3, 4, 5)
			out := b.op("PRelu", []string{x, b.param("slope", []int{3, 1, 1}, 0.1, 0.5)}, 1)
			b.output(out[0])
			xt := randTensor(b.rng, -1, 1, 2, 3, 4, 5)
			away(xt.Data, 0)
			return b.m, xt
		}, TrainOptions{}},
	}
	runGradCases(t, cases)
	// opset 11 Softmax flattens from the axis
	b := newGM(11)
	x := b.input("x", 2, 3, 4)
	b.output(b.op("LogSoftmax", []string{x}, 1, a1("axis", 1))[0])
	t.Run("LogSoftmax opset11", func(t *testing.T) { fdCheck(t, b.m, randTensor(b.rng, -2, 2, 2, 3, 4), TrainOptions{}) })
	b = newGM(11)
	x = b.input("x", 2, 3, 4)
	b.output(b.op("Softmax", []string{x}, 1, a1("axis", 1))[0])
	t.Run("Softmax opset11", func(t *testing.T) { fdCheck(t, b.m, randTensor(b.rng, -2, 2, 2, 3, 4), TrainOptions{}) })
}

func TestGradBinary(t *testing.T) {
	bin := func(op string, xs, ps []int, lo, hi float32) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			out := b.op(op, []string{x, b.param("p", ps, lo, hi)}, 1)
			b.output(out[0])
			return b.m, randTensor(b.rng, 0.5, 1.5, xs...)
		}
	}
	binRev := func(op string, xs, ps []int) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			out := b.op(op, []string{b.param("p", ps, -1, 1), x}, 1)
			b.output(out[0])
			return b.m, randTensor(b.rng, 0.5, 1.5, xs...)
		}
	}
	var cases []gradCase
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Pow"} {
		lo, hi := float32(-1), float32(1)
		if op == "Div" {
			lo, hi = 0.5, 1.5
		}
		cases = append(cases,
			gradCase{op + " same", bin(op, []int{2, 3, 4}, []int{2, 3, 4}, lo, hi), TrainOptions{}},
			gradCase{op + " channel", bin(op, []int{2, 3, 4, 5}, []int{3, 1, 1}, lo, hi), TrainOptions{}},
			gradCase{op + " row", bin(op, []int{2, 3, 4}, []int{4}, lo, hi), TrainOptions{}},
			gradCase{op + " scalar", bin(op, []int{2, 3}, []int{}, lo, hi), TrainOptions{}},
			gradCase{op + " both broadcast", bin(op, []int{2, 1, 4}, []int{3, 1}, lo, hi), TrainOptions{}},
		)
	}
	cases = append(cases,
		gradCase{"Sub reversed", binRev("Sub", []int{2, 3, 4}, []int{3, 1}), TrainOptions{}},
		gradCase{"Div reversed", binRev("Div", []int{2, 3, 4}, []int{4}), TrainOptions{}},
		gradCase{"Mul x·x", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3)
			b.output(b.op("Mul", []string{x, x}, 1)[0])
			return b.m, randTensor(b.rng, -1, 1, 2, 3)
		}, TrainOptions{}},
		gradCase{"Sum variadic", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3, 4)
			b.output(b.op("Sum", []string{x, b.param("p", []int{3, 1}, -1, 1), x, b.param("q", []int{4}, -1, 1)}, 1)[0])
			return b.m, randTensor(b.rng, -1, 1, 2, 3, 4)
		}, TrainOptions{}},
		gradCase{"Max variadic", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3, 4)
			b.output(b.op("Max", []string{x, b.param("p", []int{3, 1}, -1, 1), b.param("q", []int{4}, -1, 1)}, 1)[0])
			xt := Zeros(2, 3, 4)
			distinct(b.rng, xt.Data)
			return b.m, xt
		}, TrainOptions{}},
		gradCase{"Min relu6", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3, 4)
			mx := b.op("Max", []string{x, b.paramData("zero", []int{}, []float32{0})}, 1)
			b.output(b.op("Min", []string{mx[0], b.paramData("six", []int{}, []float32{0.5})}, 1)[0])
			xt := randTensor(b.rng, -1, 1, 2, 3, 4)
			away(xt.Data, 0, 0.5)
			return b.m, xt
		}, TrainOptions{}},
		gradCase{"Mean", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3, 4)
			b.output(b.op("Mean", []string{x, b.param("p", []int{2, 3, 4}, -1, 1)}, 1)[0])
			return b.m, randTensor(b.rng, -1, 1, 2, 3, 4)
		}, TrainOptions{}},
	)
	runGradCases(t, cases)
}

func TestGradShapeOps(t *testing.T) {
	xs := []int{2, 3, 4, 5}
	one := func(op string, attrs ...attr) func(b *gm) (*onnx.Model, *Tensor) {
		return single(op, xs, nil, attrs...)
	}
	cases := []gradCase{
		{"Concat", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			out := b.op("Concat", []string{x, b.param("p", []int{2, 2, 4, 5}, -1, 1), x}, 1, a1("axis", 1))
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}, TrainOptions{}},
		{"Split", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			parts := b.op("Split", []string{x}, 3, a1("axis", 3), ai("split", 1, 3, 1))
			m := b.op("Mul", []string{parts[1], b.param("p", []int{1}, 0.5, 1.5)}, 1)
			b.output(b.op("Concat", []string{m[0], parts[0]}, 1, a1("axis", 3))[0]) // parts[2] unused
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}, TrainOptions{}},
		{"Slice", one("Slice", ai("starts", 1, -1, 0), ai("ends", 3, -5, 100), ai("axes", 2, 3, 1), ai("steps", 1, -2, 2)), TrainOptions{}},
		{"Transpose", one("Transpose", ai("perm", 2, 0, 3, 1)), TrainOptions{}},
		{"Gather", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			out := b.op("Gather", []string{x, b.ints("idx", []int{2, 2}, 0, 3, 3, -1)}, 1, a1("axis", 2))
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}, TrainOptions{}},
		{"Expand", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 3, 1, 5)
			out := b.op("Expand", []string{x, b.ints("shape", []int{4}, 2, 3, 4, 1)}, 1)
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, 3, 1, 5)
		}, TrainOptions{}},
		{"Tile", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 2, 3)
			out := b.op("Tile", []string{x, b.ints("reps", []int{2}, 2, 3)}, 1)
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, 2, 3)
		}, TrainOptions{}},
		{"DepthToSpace", single("DepthToSpace", []int{2, 8, 2, 3}, nil, a1("blocksize", 2)), TrainOptions{}},
		{"DepthToSpace CRD", single("DepthToSpace", []int{2, 8, 2, 3}, nil, a1("blocksize", 2), as("mode", "CRD")), TrainOptions{}},
		{"SpaceToDepth", single("SpaceToDepth", []int{2, 2, 4, 6}, nil, a1("blocksize", 2)), TrainOptions{}},
		{"Pad constant", one("Pad", ai("pads", 0, 1, 2, 0, 0, 0, 1, 3), af("value", 0.5)), TrainOptions{}},
		{"Pad crop", one("Pad", ai("pads", 0, 0, -1, 2, 0, 0, 1, -2)), TrainOptions{}},
		{"Pad reflect", one("Pad", ai("pads", 0, 0, 2, 1, 0, 0, 1, 3), as("mode", "reflect")), TrainOptions{}},
		{"Pad edge", one("Pad", ai("pads", 0, 0, 2, 1, 0, 0, 1, 3), as("mode", "edge")), TrainOptions{}},
		{"Resize nearest scales", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 1, 2, 3, 4)
			out := b.op("Resize", []string{x}, 1, afs("scales", 1, 1, 2, 1.5), as("mode", "nearest"))
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, 1, 2, 3, 4)
		}, TrainOptions{}},
		{"Resize nearest sizes down", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", 1, 2, 6, 5)
			out := b.op("Resize", []string{x}, 1, ai("sizes", 1, 2, 4, 3), as("mode", "nearest"),
				as("coordinate_transformation_mode", "asymmetric"), as("nearest_mode", "floor"))
			b.output(out[0])
			return b.m, randTensor(b.rng, -1, 1, 1, 2, 6, 5)
		}, TrainOptions{}},
		{"Flatten Reshape Squeeze Unsqueeze Identity", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			f := b.op("Flatten", []string{x}, 1, a1("axis", 2))
			r := b.op("Reshape", f, 1, ai("shape", 2, 0, 1, -1))
			s := b.op("Squeeze", r, 1, ai("axes", 2))
			u := b.op("Unsqueeze", s, 1, ai("axes", 0))
			i := b.op("Identity", u, 1)
			b.output(b.op("Mul", []string{i[0], b.param("p", []int{20, 1}, -1, 1)}, 1)[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}, TrainOptions{}},
		{"Dropout with mask", func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", xs...)
			d := b.op("Dropout", []string{x}, 2)
			b.output(b.op("Mul", []string{d[0], b.param("p", []int{5}, -1, 1)}, 1)[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}, TrainOptions{}},
		{"Dropout", one("Dropout"), TrainOptions{}},
		{"Cast", one("Cast", a1("to", int64(onnx.Float))), TrainOptions{}},
		{"shape arithmetic", func(b *gm) (*onnx.Model, *Tensor) {
			// Reshape(x, Concat(Gather(Shape(x), 0), [-1])): int ops on the side, no gradient
			x := b.input("x", xs...)
			sh := b.op("Shape", []string{x}, 1)
			n := b.op("Gather", []string{sh[0], b.ints("zero", []int{1}, 0)}, 1, a1("axis", 0))
			c := b.op("Concat", []string{n[0], b.ints("minus1", []int{1}, -1)}, 1, a1("axis", 0))
			r := b.op("Reshape", []string{x, c[0]}, 1)
			b.output(b.op("Mul", []string{r[0], b.param("p", []int{60}, -1, 1)}, 1)[0])
			return b.m, randTensor(b.rng, -1, 1, xs...)
		}, TrainOptions{}},
	}
	runGradCases(t, cases)
}

func TestGradPools(t *testing.T) {
	pool := func(op string, shape []int, attrs ...attr) func(b *gm) (*onnx.Model, *Tensor) {
		return func(b *gm) (*onnx.Model, *Tensor) {
			x := b.input("x", shape...)
			b.output(b.op(op, []string{x}, 1, attrs...)[0])
			xt := Zeros(shape...)
			distinct(b.rng, xt.Data)
			return b.m, xt
		}
	}
	cases := []gradCase{
		{"MaxPool 2x2", pool("MaxPool", []int{2, 3, 6, 6}, ai("kernel_shape", 2, 2), ai("strides", 2, 2)), TrainOptions{}},
		{"MaxPool 3x3 s2 pad1", pool("MaxPool", []int{2, 2, 7, 6}, ai("kernel_shape", 3, 3), ai("strides", 2, 2), ai("pads", 1, 1, 1, 1)), TrainOptions{}},
		{"MaxPool ceil dilation", pool("MaxPool", []int{1, 2, 8, 7}, ai("kernel_shape", 2, 3), ai("strides", 2, 2), ai("dilations", 2, 1), a1("ceil_mode", 1)), TrainOptions{}},
		{"MaxPool 1-D", pool("MaxPool", []int{2, 3, 9}, ai("kernel_shape", 3), ai("strides", 2)), TrainOptions{}},
		{"AveragePool", pool("AveragePool", []int{2, 3, 6, 6}, ai("kernel_shape", 2, 2), ai("strides", 2, 2)), TrainOptions{}},
		{"AveragePool pads exclude", pool("AveragePool", []int{2, 2, 7, 6}, ai("kernel_shape", 3, 3), ai("strides", 2, 2), ai("pads", 1, 1, 1, 1)), TrainOptions{}},
		{"AveragePool pads include", pool("AveragePool", []int{2, 2, 7, 6}, ai("kernel_shape", 3, 3), ai("strides", 2, 2), ai("pads", 1, 1, 1, 1), a1("count_include_pad", 1)), TrainOptions{}},
		{"AveragePool ceil include", pool("AveragePool", []int{1, 2, 7, 8}, ai("kernel_shape", 3, 2), ai("strides", 2, 3), ai("pads", 1, 0, 0, 1), a1("ceil_mode", 1), a1("count_include_pad", 1)), TrainOptions{}},
		{"AveragePool ceil exclude", pool("AveragePool", []int{1, 2, 7, 8}, ai("kernel_shape", 3, 2), ai("strides", 2, 3), a1("ceil_mode", 1)), TrainOptions{}},
		{"GlobalAveragePool", pool("GlobalAveragePool", []int{2, 3, 4, 5}), TrainOptions{}},
		{"GlobalMaxPool", pool("GlobalMaxPool", []int{2, 3, 4, 5}), TrainOptions{}},
		{"ReduceMean axes", pool("ReduceMean", []int{2, 3, 4, 5}, ai("axes", 2, -1)), TrainOptions{}},
		{"ReduceMean no keepdims", pool("ReduceMean", []int{2, 3, 4, 5}, ai("axes", 1), a1("keepdims", 0)), TrainOptions{}},
		{"ReduceMean all", pool("ReduceMean", []int{2, 3, 4}, a1("keepdims", 0)), TrainOptions{}},
		{"ReduceSum", pool("ReduceSum", []int{2, 3, 4, 5}, ai("axes", 0, 2)), TrainOptions{}},
	}
	runGradCases(t, cases)
}

func runGradCases(t *testing.T, cases []gradCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, x := c.build(newGM(17))
			fdCheck(t, m, x, c.opt)
		})
	}
}

// TestGradChain checks a small network end to end (conv, BN, relu, residual add, pool, gemm)
// and a shared initializer (one parameter read by two convs).
func TestGradChain(t *testing.T) {
	for _, mode := range []string{"eval", "train"} {
		t.Run(mode, func(t *testing.T) {
			b := newGM(17)
			x := b.input("x", 3, 2, 6, 6)
			w := b.param("w", []int{4, 2, 3, 3}, -0.5, 0.5)
			c1 := b.op("Conv", []string{x, w}, 1, ai("pads", 1, 1, 1, 1))
			c2 := b.op("Conv", []string{x, w, b.param("b", []int{4}, -0.2, 0.2)}, 1, ai("pads", 1, 1, 1, 1), ai("dilations", 1, 1))
			s := b.op("Add", []string{c1[0], c2[0]}, 1)
			bn := b.op("BatchNormalization", []string{s[0], b.param("g", []int{4}, 0.5, 1.5), b.param("be", []int{4}, -0.5, 0.5),
				b.param("mu", []int{4}, -0.1, 0.1), b.param("var", []int{4}, 0.5, 1.5)}, 1)
			sg := b.op("Sigmoid", bn, 1)
			c3 := b.op("Conv", []string{sg[0], b.param("w3", []int{4, 4, 3, 3}, -0.3, 0.3)}, 1, ai("pads", 1, 1, 1, 1), ai("strides", 2, 2))
			gp := b.op("GlobalAveragePool", c3, 1)
			f := b.op("Flatten", gp, 1)
			out := b.op("Gemm", []string{f[0], b.param("fc", []int{3, 4}, -1, 1), b.param("fb", []int{3}, -1, 1)}, 1, a1("transB", 1))
			b.output(out[0])
			fdCheck(t, b.m, randTensor(b.rng, -1, 1, 3, 2, 6, 6), TrainOptions{BNMode: mode, Trainable: DefaultTrainable})
		})
	}
}

// TestGradUnsupported checks the error names the node an op without backward sits at, and only
// when gradients must pass through it.
func TestGradUnsupported(t *testing.T) {
	b := newGM(17)
	x := b.input("x", 2, 3)
	out := b.op("TopK", []string{x, b.ints("k", []int{1}, 2)}, 2, a1("axis", 1))
	m := b.op("MatMul", []string{out[0], b.param("w", []int{2, 2}, -1, 1)}, 1)
	b.output(m[0])
	if _, err := NewTrainer(b.m, TrainOptions{SkipInputGrad: true}); err != nil {
		t.Fatalf("only the weight trains, after TopK: %v", err)
	}
	if _, err := NewTrainer(b.m, TrainOptions{}); err == nil || !contains(err.Error(), "TopK_0") {
		t.Fatalf("the input gradient passes TopK: want an error naming TopK_0, got %v", err)
	}
	b2 := newGM(17)
	x = b2.input("x", 2, 3)
	mm := b2.op("MatMul", []string{x, b2.param("w", []int{3, 3}, -1, 1)}, 1)
	tk := b2.op("TopK", []string{mm[0], b2.ints("k", []int{1}, 2)}, 2, a1("axis", 1))
	b2.output(tk[0])
	if _, err := NewTrainer(b2.m, TrainOptions{SkipInputGrad: true}); err == nil || !contains(err.Error(), "TopK_1") {
		t.Fatalf("want an error naming TopK_1, got %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

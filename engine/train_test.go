package engine

import (
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// trainShape is a model input's declared shape with free (and batch) dims set to batch.
func trainShape(m *onnx.Model, batch int) ([]int, error) {
	v := m.Graph.Values[m.Graph.Inputs[0]]
	if v == nil || v.Shape == nil {
		return nil, fmt.Errorf("input has no declared shape")
	}
	shape := make([]int, len(v.Shape))
	for i, d := range v.Shape {
		switch {
		case i == 0:
			shape[i] = batch
		case d.Known():
			shape[i] = int(d.Size)
		default:
			return nil, fmt.Errorf("input has a free dim %d", i)
		}
	}
	return shape, nil
}

func normalTensor(rng *rand.Rand, shape []int) *Tensor {
	t := Zeros(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

func maxRelDiff(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-6)
}

// toyModel is conv(1→8, 3×3) → relu → conv(8→8, 3×3, stride 2) → BN → relu → GAP → Gemm(8→2).
func toyModel() *onnx.Model {
	b := newGM(17)
	x := b.input("x", -1, 1, 8, 8)
	c1 := b.op("Conv", []string{x, b.param("w1", []int{8, 1, 3, 3}, -0.5, 0.5), b.param("b1", []int{8}, -0.1, 0.1)}, 1, ai("pads", 1, 1, 1, 1))
	r1 := b.op("Relu", c1, 1)
	c2 := b.op("Conv", []string{r1[0], b.param("w2", []int{8, 8, 3, 3}, -0.2, 0.2)}, 1, ai("pads", 1, 1, 1, 1), ai("strides", 2, 2))
	bn := b.op("BatchNormalization", []string{c2[0], b.paramData("g", []int{8}, ones32(8)), b.paramData("be", []int{8}, make([]float32, 8)),
		b.paramData("mu", []int{8}, make([]float32, 8)), b.paramData("var", []int{8}, ones32(8))}, 1)
	r2 := b.op("Relu", bn, 1)
	gp := b.op("GlobalAveragePool", r2, 1)
	f := b.op("Flatten", gp, 1)
	out := b.op("Gemm", []string{f[0], b.param("fc", []int{2, 8}, -0.5, 0.5), b.param("fb", []int{2}, -0.1, 0.1)}, 1, a1("transB", 1))
	b.output(out[0])
	return b.m
}

func ones32(n int) []float32 {
	o := make([]float32, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

// toyBatch makes 8×8 images of a bright horizontal (class 0) or vertical (class 1) bar in noise.
func toyBatch(rng *rand.Rand, n int) (*Tensor, []int) {
	x := Zeros(n, 1, 8, 8)
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		img := x.Data[i*64 : (i+1)*64]
		for j := range img {
			img[j] = 0.3 * float32(rng.NormFloat64())
		}
		labels[i] = rng.Intn(2)
		at := rng.Intn(8)
		for k := 0; k < 8; k++ {
			if labels[i] == 0 {
				img[at*8+k] += 1
			} else {
				img[k*8+at] += 1
			}
		}
	}
	return x, labels
}

// TestTrainToyLossDecreases trains the toy model from scratch with cross-entropy, in both BN
// modes and with both optimizers, and wants the loss to fall well below chance.
func TestTrainToyLossDecreases(t *testing.T) {
	cases := []struct {
		name string
		bn   string
		opt  Optimizer
		lr   float64
	}{
		{"adam eval-BN", "eval", &Adam{}, 0.01},
		{"adamw train-BN", "train", &Adam{WeightDecay: 1e-4, Decoupled: true}, 0.01},
		{"sgd nesterov train-BN", "train", &SGD{Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4}, 0.05},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := NewTrainer(toyModel(), TrainOptions{Threads: 2, BNMode: c.bn, SkipInputGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			rng := rand.New(rand.NewSource(3))
			const steps = 150
			var first, last float64
			grad := &Tensor{}
			for s := 0; s < steps; s++ {
				x, labels := toyBatch(rng, 32)
				y, err := tr.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				loss := CrossEntropyInto(grad, y, labels)
				tr.ZeroGrad()
				if err := tr.Backward(grad); err != nil {
					t.Fatal(err)
				}
				c.opt.Step(tr.Params(), Cosine(c.lr, s, steps, 10))
				if s < 10 {
					first += loss / 10
				}
				if s >= steps-10 {
					last += loss / 10
				}
			}
			t.Logf("loss %.3f → %.3f", first, last)
			if !(last < 0.25 && last < first/2) {
				t.Errorf("loss went from %.3f to %.3f; want below 0.25 and half", first, last)
			}
		})
	}
}

// TestTrainBundledModels checks, on every bundled model, that the trainer's forward equals the
// inference engine's, that training allocates nothing after the first step, and that a few KD
// steps bring a perturbed copy closer to the original.
func TestTrainBundledModels(t *testing.T) {
	for _, path := range testenv.BundledModels(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			teacher, err := onnx.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			shape, err := trainShape(teacher, 16)
			if err != nil {
				t.Fatalf("%v: the test cannot pick an input shape for this model", err)
			}
			rng := rand.New(rand.NewSource(5))
			x := evalImages(t, shape, rng)
			p, err := Compile(teacher, Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			outs, err := p.RunSlice(x)
			if err != nil {
				t.Fatal(err)
			}
			want := outs[0].Clone()

			tr, err := NewTrainer(teacher, TrainOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			got, err := tr.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Shape, want.Shape) {
				t.Fatalf("trainer output %v, program %v", got.Shape, want.Shape)
			}
			if d := maxRelDiff(got.Data, want.Data); d > 1e-4 {
				t.Errorf("trainer forward differs from the program by %.2g relative", d)
			}

			// student: the teacher with every parameter perturbed by 10% noise
			student := teacher.Clone()
			st, err := NewTrainer(student, TrainOptions{Threads: 2, SkipInputGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, q := range st.Params() {
				for i := range q.Value {
					q.Value[i] *= 1 + 0.1*float32(rng.NormFloat64())
				}
			}
			opt := &Adam{}
			grad := &Tensor{}
			// 10 Adam steps at 1e-4 on the teacher's soft targets (T = 2) of 16 real images
			kl := func(x *Tensor) float64 {
				y, err := st.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				return KLDivInto(grad, y, want, 2)
			}
			step := func() {
				kl(x)
				st.ZeroGrad()
				if err := st.Backward(grad); err != nil {
					t.Fatal(err)
				}
				opt.Step(st.Params(), 1e-4)
			}
			before := kl(x)
			step()
			allocs := testing.AllocsPerRun(3, step)
			for i := 0; i < 6; i++ {
				step()
			}
			after := kl(x)
			t.Logf("KL %.4g → %.4g after 10 steps", before, after)
			if !(before > 1e-3 && after < before*0.5) {
				t.Errorf("KL went from %.4g to %.4g; want a drop by half", before, after)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per training step after the first", allocs)
			}
			// the trained values land in the student model as new tensors
			old := map[string]*onnx.Tensor{}
			for k, v := range student.Graph.Inits {
				old[k] = v
			}
			st.WriteBack(student)
			for _, q := range st.Params() {
				nt := student.Graph.Inits[q.Name]
				if nt == old[q.Name] {
					t.Fatalf("%s: WriteBack mutated the old tensor instead of replacing it", q.Name)
				}
				if maxRelDiff(nt.Floats, q.Value) != 0 || maxRelDiff(old[q.Name].Floats, teacher.Graph.Inits[q.Name].Floats) != 0 {
					t.Fatalf("%s: written values differ, or the old tensor changed", q.Name)
				}
			}
		})
	}
}

// evalImages is models/data/eval16.npy (16 Fashion-MNIST test images) when the shape fits, else
// uniform noise in [0, 1).
func evalImages(t *testing.T, shape []int, rng *rand.Rand) *Tensor {
	a, err := npy.ReadFile(filepath.Join(testenv.ModelsDir(t), "data", "eval16.npy"))
	if err == nil && a.Float32 != nil && slices.Equal(a.Shape, shape) {
		return NewTensor(a.Shape, a.Float32)
	}
	return randTensor(rng, 0, 1, shape...)
}

// TestTrainInputGrad checks the gradient with respect to the input on a bundled-style net with
// a residual branch (the input feeds two convs), against finite differences of the KL.
func TestTrainInputGrad(t *testing.T) {
	b := newGM(17)
	x := b.input("x", 2, 2, 5, 5)
	c1 := b.op("Conv", []string{x, b.param("w1", []int{2, 2, 3, 3}, -0.5, 0.5)}, 1, ai("pads", 1, 1, 1, 1))
	t1 := b.op("Tanh", c1, 1)
	s := b.op("Add", []string{t1[0], x}, 1)
	gp := b.op("GlobalAveragePool", s, 1)
	f := b.op("Flatten", gp, 1)
	b.output(f[0])
	tr, err := NewTrainer(b.m, TrainOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	xt := randTensor(b.rng, -1, 1, 2, 2, 5, 5)
	teacher := randTensor(b.rng, -1, 1, 2, 2)
	grad := &Tensor{}
	loss := func() float64 {
		y, err := tr.Forward(xt)
		if err != nil {
			t.Fatal(err)
		}
		return KLDivInto(grad, y, teacher, 1)
	}
	loss()
	if err := tr.Backward(grad); err != nil {
		t.Fatal(err)
	}
	gx := tr.InputGrad().Clone()
	for _, i := range []int{0, 7, 24, 31, 49, 77, 99} {
		v := xt.Data[i]
		xt.Data[i] = v + fdStep
		lp := loss()
		xt.Data[i] = v - fdStep
		lm := loss()
		xt.Data[i] = v
		num := (lp - lm) / (2 * fdStep)
		if math.Abs(float64(gx.Data[i])-num) > 1e-4+2e-2*math.Abs(num) {
			t.Errorf("input grad [%d]: %.6g, finite difference %.6g", i, gx.Data[i], num)
		}
	}
}

// TestTrainKeep checks ForwardKeep/BackwardFrom: a feature loss on an intermediate value alone
// gives the same gradients as the graph cut there.
func TestTrainKeep(t *testing.T) {
	m := toyModel()
	tr, err := NewTrainer(m, TrainOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rng := rand.New(rand.NewSource(9))
	x, _ := toyBatch(rng, 4)
	feat := m.Graph.Nodes[0].Outputs[0] // the first conv's output
	vals, err := tr.ForwardKeep(x, feat)
	if err != nil {
		t.Fatal(err)
	}
	f := vals[feat]
	target := randTensor(rng, 0, 1, f.Shape...)
	_, g := MSE(f, target)
	tr.ZeroGrad()
	if err := tr.BackwardFrom(map[string]*Tensor{feat: g}); err != nil {
		t.Fatal(err)
	}
	for _, p := range tr.Params() {
		var s float64
		for _, v := range p.Grad {
			s += math.Abs(float64(v))
		}
		first := p.Name == "w1" || p.Name == "b1"
		if first != (s > 0) {
			t.Errorf("%s: gradient sum %g (only the first conv feeds the feature)", p.Name, s)
		}
	}
	// finite differences on w1
	var w1 *Param
	for _, p := range tr.Params() {
		if p.Name == "w1" {
			w1 = p
		}
	}
	for _, i := range []int{0, 5, 40, 71} {
		v := w1.Value[i]
		l := func(d float32) float64 {
			w1.Value[i] = v + d
			vals, err := tr.ForwardKeep(x, feat)
			if err != nil {
				t.Fatal(err)
			}
			loss, _ := MSE(vals[feat], target)
			return loss
		}
		num := (l(fdStep) - l(-fdStep)) / (2 * fdStep)
		w1.Value[i] = v
		if math.Abs(float64(w1.Grad[i])-num) > 1e-4+2e-2*math.Abs(num) {
			t.Errorf("w1[%d]: %.6g, finite difference %.6g", i, w1.Grad[i], num)
		}
	}
}

// TestTrainSharedInitializer checks an initializer read by two nodes is one parameter, written
// back once.
func TestTrainSharedInitializer(t *testing.T) {
	b := newGM(17)
	x := b.input("x", 1, 2, 4, 4)
	w := b.param("w", []int{2, 2, 1, 1}, -1, 1)
	c1 := b.op("Conv", []string{x, w}, 1)
	c2 := b.op("Conv", []string{c1[0], w}, 1)
	b.output(c2[0])
	tr, err := NewTrainer(b.m, TrainOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if n := len(tr.Params()); n != 1 {
		t.Fatalf("%d parameters, want 1", n)
	}
	tr.Params()[0].Value[0] = 42
	tr.WriteBack(b.m)
	if got := b.m.Graph.Inits["w"].Floats[0]; got != 42 {
		t.Fatalf("written back %v", got)
	}
}

// TestTrainBNSharedStats checks train mode with running statistics shared by two BN nodes (as
// torch's export merges equal initializers): each node keeps its own, and WriteBack un-shares.
func TestTrainBNSharedStats(t *testing.T) {
	b := newGM(17)
	x := b.input("x", 4, 2, 3, 3)
	g, be := b.param("g", []int{2}, 0.5, 1.5), b.param("be", []int{2}, -1, 1)
	mu, v := b.paramData("mu", []int{2}, []float32{0, 0}), b.paramData("var", []int{2}, []float32{1, 1})
	bn1 := b.op("BatchNormalization", []string{x, g, be, mu, v}, 1, af("momentum", 0.5))
	sq := b.op("Mul", []string{bn1[0], bn1[0]}, 1)
	bn2 := b.op("BatchNormalization", []string{sq[0], g, be, mu, v}, 1, af("momentum", 0.5))
	b.output(bn2[0])
	tr, err := NewTrainer(b.m, TrainOptions{Threads: 1, BNMode: "train"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Forward(randTensor(b.rng, -1, 1, 4, 2, 3, 3)); err != nil {
		t.Fatal(err)
	}
	tr.WriteBack(b.m)
	n1, n2 := b.m.Graph.Nodes[0], b.m.Graph.Nodes[2]
	if n1.Inputs[3] == n2.Inputs[3] || n1.Inputs[4] == n2.Inputs[4] {
		t.Fatalf("running statistics still shared: %v, %v", n1.Inputs, n2.Inputs)
	}
	m1, m2 := b.m.Graph.Inits[n1.Inputs[3]].Floats, b.m.Graph.Inits[n2.Inputs[3]].Floats
	v2 := b.m.Graph.Inits[n2.Inputs[4]].Floats
	// bn2 normalises squares: its batch mean is positive, so its running mean moves to > 0.2
	if m1[0] == 0 || m2[0] < 0.2 || m2[1] < 0.2 || v2[0] == 1 {
		t.Fatalf("running means %v and %v, variance %v", m1, m2, v2)
	}
	if g1, g2 := n1.Inputs[1], n2.Inputs[1]; g1 != g2 {
		t.Fatalf("the shared scale is one parameter and stays shared: %s, %s", g1, g2)
	}
}

// directionalCheck compares the gradient g of L = Σ r·y (input and parameters together) with
// one-sided differences along d (each tensor's gradient normalised, so every layer counts): on a
// smooth loss (L(θ ± εd) − L(θ))/±ε both approach g·d; where values sit on a kink (a Relu or Clip input at its bound) the two sides differ and any
// gradient convention gives a g·d between them. Parameters that are all zero are left out of the
// direction: untrained exports share zero biases, and a conv whose inputs are all zero (dead
// channels after a Clip) outputs exactly that bias, on the next Clip's kink. The step moves the
// largest element by 1e-5 of the largest magnitude (then 1e-4, for kinks that close); float32
// rounding allows 3% of g·d around the one-sided range.
func directionalCheck(t *testing.T, tr *Trainer, x *Tensor, rng *rand.Rand) {
	t.Helper()
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
	l0 := loss()
	if err := tr.Backward(r); err != nil {
		t.Fatal(err)
	}
	vals := [][]float32{x.Data}
	grads := [][]float32{append([]float32(nil), tr.InputGrad().Data...)}
	for _, p := range tr.Params() {
		if maxAbs(p.Value) == 0 {
			continue
		}
		vals = append(vals, p.Value)
		grads = append(grads, append([]float32(nil), p.Grad...))
	}
	// d = Σ_p ĝ_p/√P over the P tensors with a gradient: every layer moves, and the directional
	// derivative along d is Σ_p |g_p|/√P
	norms := make([]float64, len(grads))
	var want, maxStep, maxV float64
	live := 0
	for k, g := range grads {
		var n2 float64
		for i, v := range g {
			n2 += float64(v) * float64(v)
			maxV = math.Max(maxV, math.Abs(float64(vals[k][i])))
		}
		norms[k] = math.Sqrt(n2)
		if norms[k] > 0 {
			live++
			maxStep = math.Max(maxStep, maxAbs(g)/norms[k])
		}
	}
	if live == 0 {
		t.Fatal("zero gradient")
	}
	root := math.Sqrt(float64(live))
	for _, n := range norms {
		want += n / root
	}
	orig := make([][]float32, len(vals))
	for k := range vals {
		orig[k] = append([]float32(nil), vals[k]...)
	}
	shift := func(s float64) {
		for k, g := range grads {
			if norms[k] == 0 {
				continue
			}
			for i, v := range g {
				vals[k][i] = orig[k][i] + float32(s*float64(v)/norms[k]/root)
			}
		}
	}
	norm := want
	var lo, hi float64
	for _, scale := range []float64{1e-5, 1e-4} {
		eps := scale * maxV * root / maxStep
		shift(eps)
		lp := loss()
		shift(-eps)
		lm := loss()
		shift(0)
		up, down := (lp-l0)/eps, (l0-lm)/eps
		lo, hi = math.Min(up, down), math.Max(up, down)
		t.Logf("step %g: one-sided directional derivatives %.6g and %.6g, gradient %.6g", scale, down, up, norm)
		if norm >= lo-0.03*norm && norm <= hi+0.03*norm {
			return
		}
	}
	t.Errorf("gradient's directional derivative %.6g outside the one-sided differences [%.6g, %.6g]", norm, lo, hi)
}

// TestTrainForeignAndZoo runs the trainer on the foreign-style exports and the torchvision zoo:
// its forward against the inference engine's, and a directional gradient check.
func TestTrainForeignAndZoo(t *testing.T) {
	type item struct {
		path  string
		shape []int
	}
	var items []item
	for _, f := range testenv.ForeignModels(t) {
		items = append(items, item{f.Path, ints(f.InputShape)})
	}
	if !testing.Short() {
		for _, p := range testenv.ZooModels(t) {
			items = append(items, item{p, nil})
		}
	}
	for _, it := range items {
		t.Run(filepath.Base(it.path), func(t *testing.T) {
			m, err := onnx.Load(it.path)
			if err != nil {
				t.Fatal(err)
			}
			shape := it.shape
			if shape == nil {
				if shape, err = trainShape(m, 1); err != nil {
					t.Fatalf("%v: the test cannot pick an input shape for this model", err)
				}
			}
			rng := rand.New(rand.NewSource(11))
			x := normalTensor(rng, shape)
			tr, err := NewTrainer(m, TrainOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			got, err := tr.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			if p, err := Compile(m, Options{Threads: 2}); err != nil {
				t.Logf("no inference forward to compare with: %v", err)
			} else {
				defer p.Close()
				outs, err := p.RunSlice(x)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxRelDiff(got.Data, outs[0].Data); d > 1e-4 {
					t.Errorf("trainer forward differs from the program by %.2g relative", d)
				}
			}
			directionalCheck(t, tr, x, rng)
		})
	}
}

// TestTrainAlternatingShapes alternates batch sizes on one trainer (a last partial batch) and
// wants the gradients of fresh trainers at each size.
func TestTrainAlternatingShapes(t *testing.T) {
	b := newGM(17)
	x := b.input("x", -1, 3, 7, 7)
	c1 := b.op("Conv", []string{x, b.param("w1", []int{8, 3, 3, 3}, -0.5, 0.5)}, 1, ai("pads", 1, 1, 1, 1), ai("strides", 2, 2))
	t1 := b.op("Tanh", c1, 1)
	mp := b.op("MaxPool", t1, 1, ai("kernel_shape", 2, 2), ai("strides", 1, 1))
	tr1 := b.op("Transpose", mp, 1, ai("perm", 0, 1, 3, 2))
	c2 := b.op("Conv", []string{tr1[0], b.param("w2", []int{6, 8, 3, 3}, -0.5, 0.5)}, 1, ai("pads", 1, 1, 1, 1))
	gp := b.op("GlobalAveragePool", c2, 1)
	b.output(b.op("Flatten", gp, 1)[0])
	rng := rand.New(rand.NewSource(4))
	xs := []*Tensor{randTensor(rng, -1, 1, 4, 3, 7, 7), randTensor(rng, -1, 1, 3, 3, 7, 7)}
	grads := func(tr *Trainer, x *Tensor) []float32 {
		y, err := tr.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		tr.ZeroGrad()
		if err := tr.Backward(y); err != nil {
			t.Fatal(err)
		}
		var out []float32
		for _, p := range tr.Params() {
			out = append(out, p.Grad...)
		}
		return append(out, tr.InputGrad().Data...)
	}
	want := make([][]float32, len(xs))
	for i, x := range xs {
		tr, err := NewTrainer(b.m, TrainOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = grads(tr, x)
		tr.Close()
	}
	tr, err := NewTrainer(b.m, TrainOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for round := 0; round < 3; round++ {
		for i, x := range xs {
			if d := maxRelDiff(grads(tr, x), want[i]); d > 1e-6 {
				t.Fatalf("round %d, batch %d: gradients differ by %.2g", round, x.Shape[0], d)
			}
		}
	}
}

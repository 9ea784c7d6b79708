package engine

import (
	"math"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// irModel builds a model in IR form: inputs are float tensors of the given shapes (-1: free).
type irModel struct{ m *onnx.Model }

func newIRModel(opset int64) *irModel {
	return &irModel{m: &onnx.Model{Opsets: map[string]int64{"": opset}, Graph: &onnx.Graph{
		Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}}}}
}

func (b *irModel) input(name string, dims ...int64) *irModel {
	s := make(onnx.Shape, len(dims))
	for i, d := range dims {
		s[i] = onnx.Dim{Size: d}
	}
	b.m.Graph.Inputs = append(b.m.Graph.Inputs, name)
	b.m.Graph.Values[name] = &onnx.Value{Name: name, Type: onnx.Float, Shape: s}
	return b
}

func (b *irModel) init(name string, dims []int64, data []float32) *irModel {
	b.m.Graph.Inits[name] = onnx.NewFloatTensor(name, dims, data)
	b.m.Graph.InitOrder = append(b.m.Graph.InitOrder, name)
	return b
}

func (b *irModel) node(op string, in, out []string, attrs map[string]*onnx.Attr) *irModel {
	if attrs == nil {
		attrs = map[string]*onnx.Attr{}
	}
	b.m.Graph.Nodes = append(b.m.Graph.Nodes, &onnx.Node{Name: out[0], OpType: op, Inputs: in, Outputs: out, Attrs: attrs})
	return b
}

func (b *irModel) output(names ...string) *onnx.Model {
	b.m.Graph.Outputs = names
	return b.m
}

func randFloats(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func posFloats(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 0.5 + rng.Float32()
	}
	return s
}

// convBNReluModel is x → Conv → BatchNormalization → Add(x) → Relu, all fusable.
func convBNReluModel(rng *rand.Rand) *onnx.Model {
	c := int64(8)
	return newIRModel(13).input("x", -1, c, 6, 6).
		init("w", []int64{c, c, 3, 3}, randFloats(rng, int(c*c*9))).init("b", []int64{c}, randFloats(rng, int(c))).
		init("s", []int64{c}, posFloats(rng, int(c))).init("t", []int64{c}, randFloats(rng, int(c))).
		init("mean", []int64{c}, randFloats(rng, int(c))).init("var", []int64{c}, posFloats(rng, int(c))).
		node("Conv", []string{"x", "w", "b"}, []string{"conv"}, map[string]*onnx.Attr{
			"pads": {Kind: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}}}).
		node("BatchNormalization", []string{"conv", "s", "t", "mean", "var"}, []string{"bn"}, nil).
		node("Add", []string{"bn", "x"}, []string{"sum"}, nil).
		node("Relu", []string{"sum"}, []string{"y"}, nil).
		output("y")
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestFusionMatchesUnfused checks the fused Conv+BN+Add+Relu step against the unfused ops, and
// that RunKeep reads values fusion removed.
func TestFusionMatchesUnfused(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	m := convBNReluModel(rng)
	fused, err := Compile(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer fused.Close()
	if got := fused.graphs[""].steps; len(got) != 1 || got[0].opType != "Conv+BatchNormalization+Add+Relu" {
		t.Fatalf("steps %v, want one fused step", got)
	}
	plain, err := Compile(m, Options{Threads: 2, NoFusion: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	x := &Tensor{Shape: []int{3, 8, 6, 6}, Data: randFloats(rng, 3*8*36)}
	in := map[string]*Tensor{"x": x}
	want, err := plain.RunKeep(in, "conv", "bn")
	if err != nil {
		t.Fatal(err)
	}
	got, err := fused.RunKeep(in, "conv", "bn")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"y", "conv", "bn"} {
		if d := maxDiff(got[name].Data, want[name].Data); d > 1e-4 {
			t.Errorf("%s differs by %g", name, d)
		}
	}
	if len(fused.graphs) != 2 {
		t.Errorf("RunKeep of fused values compiled %d graphs, want 2", len(fused.graphs))
	}
	// a plain run of the fused program still uses the fused graph
	out, err := fused.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out["y"].Data, want["y"].Data); d > 1e-4 {
		t.Errorf("y differs by %g", d)
	}
}

// TestShapesChangeBetweenRuns runs batch sizes in turn: each gets its own plan, and outputs of
// one run are not disturbed by Run's copies.
func TestShapesChangeBetweenRuns(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	m := convBNReluModel(rng)
	p, err := Compile(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ref, err := Compile(m, Options{Threads: 1, NoFusion: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, n := range []int{1, 5, 1, 2, 5} {
		x := &Tensor{Shape: []int{n, 8, 6, 6}, Data: randFloats(rng, n*8*36)}
		got, err := p.RunSlice(x)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.RunSlice(x)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[0].Shape, []int{n, 8, 6, 6}) || maxDiff(got[0].Data, want[0].Data) > 1e-4 {
			t.Fatalf("batch %d: wrong result", n)
		}
	}
	if len(p.graphs[""].plans) != 3 {
		t.Errorf("%d plans, want 3", len(p.graphs[""].plans))
	}
}

// TestDataDependentShape feeds a Reshape a shape computed from float data: the planned path must
// notice the shape changed.
func TestDataDependentShape(t *testing.T) {
	m := newIRModel(13).input("x", 6).input("s", 2).
		node("Cast", []string{"s"}, []string{"si"}, map[string]*onnx.Attr{"to": {Kind: onnx.AttrInt, I: 7}}).
		node("Reshape", []string{"x", "si"}, []string{"r"}, nil).
		node("Relu", []string{"r"}, []string{"y"}, nil).output("y")
	p, err := Compile(m, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	x := &Tensor{Shape: []int{6}, Data: []float32{1, -2, 3, -4, 5, -6}}
	for _, s := range [][]float32{{2, 3}, {3, 2}, {2, 3}, {6, 1}} {
		out, err := p.RunSlice(x, &Tensor{Shape: []int{2}, Data: s})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out[0].Shape, []int{int(s[0]), int(s[1])}) || out[0].Data[2] != 3 || out[0].Data[1] != 0 {
			t.Fatalf("shape from %v: got %v %v", s, out[0].Shape, out[0].Data)
		}
	}
}

// TestBadInputs checks that wrong inputs are errors that say what is wrong.
func TestBadInputs(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	p, err := Compile(convBNReluModel(rng), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tc := range []struct {
		in   []*Tensor
		want string
	}{
		{nil, "takes 1"},
		{[]*Tensor{nil}, "nil"},
		{[]*Tensor{Zeros(1, 3, 6, 6)}, "wants [?x8x6x6]"},
		{[]*Tensor{Zeros(8, 6, 6)}, "rank 4"},
		{[]*Tensor{{Shape: []int{1, 8, 6, 6}, Data: make([]float32, 5)}}, "too few values"},
		{[]*Tensor{Zeros(1, 8, 2, 2)}, "wants"},
	} {
		_, err := p.RunSlice(tc.in...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("inputs %v: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
	if _, err := p.Run(map[string]*Tensor{"z": Zeros(1)}); err == nil {
		t.Error("Run with a wrong input name succeeded")
	}
	if _, err := p.RunKeep(map[string]*Tensor{"x": Zeros(1, 8, 6, 6)}, "nope"); err == nil {
		t.Error("RunKeep of an unknown value succeeded")
	}
}

// TestUnsupportedOp checks Compile names the node and op it cannot run.
func TestUnsupportedOp(t *testing.T) {
	m := newIRModel(13).input("x", 2).node("FancyOp", []string{"x"}, []string{"y"}, nil).output("y")
	_, err := Compile(m, Options{})
	if err == nil || err.Error() != "engine: node y: op FancyOp is not supported" {
		t.Fatalf("error %v", err)
	}
}

// TestConcurrentRuns runs one program from several goroutines.
func TestConcurrentRuns(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	p, err := Compile(convBNReluModel(rng), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	x := map[string]*Tensor{"x": {Shape: []int{2, 8, 6, 6}, Data: randFloats(rng, 2*8*36)}}
	want, err := p.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				got, err := p.Run(x)
				if err != nil || maxDiff(got["y"].Data, want["y"].Data) != 0 {
					t.Errorf("concurrent run differs (%v)", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestBufferReuse checks the plan shares storage between values whose lives do not overlap.
func TestBufferReuse(t *testing.T) {
	b := newIRModel(13).input("x", 1, 64)
	prev := "x"
	for i := 0; i < 10; i++ {
		out := "v" + string(rune('a'+i))
		b.node("Sigmoid", []string{prev}, []string{out}, nil)
		prev = out
	}
	m := b.output(prev)
	p, err := Compile(m, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.RunSlice(Zeros(1, 64)); err != nil {
		t.Fatal(err)
	}
	seen := map[*float32]bool{}
	for _, v := range p.graphs[""].last.vals {
		if v != nil && len(v.Data) > 0 {
			seen[&v.Data[0]] = true
		}
	}
	if len(seen) > 2 {
		t.Errorf("a chain of element-wise ops uses %d buffers, want at most 2", len(seen))
	}
}

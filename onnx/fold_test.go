package onnx

import (
	"slices"
	"testing"
)

// graphBuilder makes small hand-built graphs for the evaluator's tests.
type graphBuilder struct{ g *Graph }

func newGraphBuilder() *graphBuilder {
	return &graphBuilder{g: &Graph{Values: map[string]*Value{}, Inits: map[string]*Tensor{}}}
}

func (b *graphBuilder) input(name string, s Shape) *graphBuilder {
	b.g.Inputs = append(b.g.Inputs, name)
	b.g.Values[name] = &Value{Name: name, Type: Float, Shape: s}
	return b
}

func (b *graphBuilder) ints(name string, dims []int64, v ...int64) *graphBuilder {
	b.g.Inits[name] = NewIntTensor(name, dims, v)
	b.g.InitOrder = append(b.g.InitOrder, name)
	b.g.Values[name] = &Value{Name: name, Type: Int64, Shape: ShapeOf(dims...)}
	return b
}

func (b *graphBuilder) floats(name string, dims []int64, v ...float32) *graphBuilder {
	b.g.Inits[name] = NewFloatTensor(name, dims, v)
	b.g.InitOrder = append(b.g.InitOrder, name)
	b.g.Values[name] = &Value{Name: name, Type: Float, Shape: ShapeOf(dims...)}
	return b
}

func (b *graphBuilder) node(op string, in []string, out string, attrs map[string]*Attr) *graphBuilder {
	if attrs == nil {
		attrs = map[string]*Attr{}
	}
	b.g.Nodes = append(b.g.Nodes, &Node{Name: out, OpType: op, Inputs: in, Outputs: []string{out}, Attrs: attrs})
	return b
}

func intsAttr(v ...int64) *Attr { return &Attr{Kind: AttrInts, Ints: v} }
func intAttr(v int64) *Attr     { return &Attr{Kind: AttrInt, I: v} }

// TestFoldAtImport: import folds chains of integer constants into initializers with the values ONNX
// gives them, including multi-dim tensors and negative values, and leaves alone what reads a
// graph input.
func TestFoldAtImport(t *testing.T) {
	tests := []struct {
		name   string
		build  func(b *graphBuilder)
		out    string
		dims   []int64
		values []int64
	}{
		{"torch's Pad amounts: ConstantOfShape, Concat, Reshape, reversed Slice, Transpose, Reshape, Cast",
			func(b *graphBuilder) {
				b.ints("n", []int64{1}, 4).ints("p", []int64{4}, 1, 2, 3, 4).ints("shape", []int64{2}, -1, 2).
					node("ConstantOfShape", []string{"n"}, "zeros", map[string]*Attr{"value": {Kind: AttrTensor, T: NewIntTensor("", []int64{1}, []int64{0})}}).
					node("Concat", []string{"p", "zeros"}, "all", map[string]*Attr{"axis": intAttr(0)}).
					node("Reshape", []string{"all", "shape"}, "pairs", nil).
					node("Slice", []string{"pairs"}, "rev", map[string]*Attr{"starts": intsAttr(-1), "ends": intsAttr(-1 << 63), "axes": intsAttr(0), "steps": intsAttr(-1)}).
					node("Transpose", []string{"rev"}, "tr", map[string]*Attr{"perm": intsAttr(1, 0)}).
					node("Reshape", []string{"tr", "minus1"}, "flat", nil).ints("minus1", []int64{1}, -1).
					node("Cast", []string{"flat"}, "y", map[string]*Attr{"to": intAttr(int64(Int64))})
			}, "y", []int64{8}, []int64{0, 0, 3, 1, 0, 0, 4, 2}},
		{"integer Div truncates toward zero, Neg and Abs", func(b *graphBuilder) {
			b.ints("a", []int64{3}, -7, 7, 9).ints("b", []int64{1}, 2).
				node("Div", []string{"a", "b"}, "q", nil).node("Neg", []string{"q"}, "nq", nil).
				node("Abs", []string{"a"}, "aa", nil).node("Concat", []string{"nq", "aa"}, "y", map[string]*Attr{"axis": intAttr(0)})
		}, "y", []int64{6}, []int64{3, -3, -4, 7, 7, 9}},
		{"broadcast Mul and Sub on 2-D", func(b *graphBuilder) {
			b.ints("a", []int64{2, 1}, 1, 2).ints("b", []int64{3}, 10, 20, 30).
				node("Mul", []string{"a", "b"}, "m", nil).node("Sub", []string{"m", "a"}, "y", nil)
		}, "y", []int64{2, 3}, []int64{9, 19, 29, 18, 38, 58}},
		{"Gather with a negative index, Unsqueeze", func(b *graphBuilder) {
			b.ints("a", []int64{4}, 5, 6, 7, 8).ints("i", []int64{2}, -1, 1).
				node("Gather", []string{"a", "i"}, "g", nil).node("Unsqueeze", []string{"g"}, "y", map[string]*Attr{"axes": intsAttr(0)})
		}, "y", []int64{1, 2}, []int64{8, 6}},
		{"Shape and Size of an initializer, Cast of floats", func(b *graphBuilder) {
			b.floats("w", []int64{2, 3}, 1.9, -1.9, 0, 0, 0, 0).
				node("Shape", []string{"w"}, "s", nil).node("Size", []string{"w"}, "n", nil).
				node("Unsqueeze", []string{"n"}, "n1", map[string]*Attr{"axes": intsAttr(0)}).
				node("Cast", []string{"w"}, "c", map[string]*Attr{"to": intAttr(int64(Int64))}).
				node("Slice", []string{"c"}, "c2", map[string]*Attr{"starts": intsAttr(0, 0), "ends": intsAttr(1, 2)}).
				node("Flatten", []string{"c2"}, "c3", map[string]*Attr{"axis": intAttr(0)}).
				node("Reshape", []string{"c3", "len"}, "c4", nil).ints("len", []int64{1}, 2).
				node("Concat", []string{"s", "n1", "c4"}, "y", map[string]*Attr{"axis": intAttr(0)})
		}, "y", []int64{5}, []int64{2, 3, 6, 1, -1}},
		{"ReduceProd", func(b *graphBuilder) {
			b.ints("a", []int64{3}, 2, 3, 4).node("ReduceProd", []string{"a"}, "y", map[string]*Attr{"keepdims": intAttr(0)})
		}, "y", []int64{}, []int64{24}},
	}
	for _, tc := range tests {
		b := newGraphBuilder().input("x", ShapeOf(1, 3))
		tc.build(b)
		b.node("Reshape", []string{"x", tc.out}, "use", nil) // a reader, so nothing is dead
		b.g.Outputs = []string{"use"}
		if !foldConstantChains(b.g) {
			t.Errorf("%s: nothing folded", tc.name)
			continue
		}
		got, ok := b.g.Inits[tc.out]
		if !ok {
			t.Errorf("%s: %s was not folded (nodes left: %d)", tc.name, tc.out, len(b.g.Nodes))
			continue
		}
		if !slices.Equal(got.Dims, tc.dims) || !slices.Equal(got.Ints, tc.values) {
			t.Errorf("%s: folded to %v %v, want %v %v", tc.name, got.Dims, got.Ints, tc.dims, tc.values)
		}
		if len(b.g.Nodes) != 1 {
			t.Errorf("%s: %d nodes left, want only the reader", tc.name, len(b.g.Nodes))
		}
	}

	// Shape of a graph input is not folded at import: its declared batch may be replaced later.
	b := newGraphBuilder().input("x", ShapeOf(1, 3)).node("Shape", []string{"x"}, "s", nil).node("Reshape", []string{"x", "s"}, "y", nil)
	b.g.Outputs = []string{"y"}
	if foldConstantChains(b.g) {
		t.Errorf("import folded the Shape of a graph input")
	}
}

// TestSymbolicValues: inference follows a dynamic batch through the integer chains exporters write
// (Shape → Gather → Unsqueeze → Concat → Reshape) and folds what is fully known.
func TestSymbolicValues(t *testing.T) {
	batch := Dim{Size: -1, Param: "N"}
	b := newGraphBuilder().input("x", Shape{batch, D(4), D(2), D(2)}).ints("zero", []int64{}, 0).ints("one", []int64{}, 1).
		ints("minus1", []int64{1}, -1).
		node("Shape", []string{"x"}, "s", nil).
		node("Gather", []string{"s", "zero"}, "n", nil).
		node("Gather", []string{"s", "one"}, "c", nil).
		node("Mul", []string{"n", "one"}, "n1", nil). // N·1 is still N
		node("Unsqueeze", []string{"n1"}, "nu", map[string]*Attr{"axes": intsAttr(0)}).
		node("Concat", []string{"nu", "minus1"}, "target", map[string]*Attr{"axis": intAttr(0)}).
		node("Reshape", []string{"x", "target"}, "flat", nil).
		node("Unsqueeze", []string{"c"}, "cu", map[string]*Attr{"axes": intsAttr(0)}).
		node("Add", []string{"cu", "one"}, "c1", nil).
		node("ConstantOfShape", []string{"c1"}, "y", nil)
	b.g.Outputs = []string{"flat", "y"}
	m := &Model{Graph: b.g, Opsets: map[string]int64{"": 13}}
	res, err := InferShapes(m, InferOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.g.Values["flat"].Shape; !got.Equal(Shape{batch, D(16)}) {
		t.Errorf("Reshape to [N, -1] inferred %v, want [N 16]", got)
	}
	if got := res.IntValues["target"]; len(got) != 2 || got[0] != batch || got[1].Size != -1 {
		t.Errorf("IntValues[target] = %v, want [N -1]", got)
	}
	if got := res.IntValues["c1"]; len(got) != 1 || got[0] != D(5) {
		t.Errorf("IntValues[c1] = %v, want [5]", got)
	}

	m2 := &Model{Graph: b.g, Opsets: map[string]int64{"": 13}}
	if _, err := InferShapes(m2, InferOptions{Fold: true, Inputs: map[string]Shape{"x": ShapeOf(2, 4, 2, 2)}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range b.g.Nodes {
		if n.OpType != "Reshape" && n.OpType != "ConstantOfShape" {
			t.Errorf("node %s (%s) was not folded at a static input shape", n.Label(), n.OpType)
		}
	}
	if got := b.g.Values["flat"].Shape; !got.Equal(ShapeOf(2, 16)) {
		t.Errorf("after folding, flat is %v, want [2 16]", got)
	}
	if got := b.g.Values["y"].Shape; !got.Equal(ShapeOf(5)) {
		t.Errorf("ConstantOfShape of C+1 is %v, want [5]", got)
	}
}

// FuzzEvalInts builds small graphs of integer ops with arbitrary constants, dims and attributes
// and runs import folding and inference with folding on them: malformed arguments must give an
// unfolded node or an error, never a panic.
func FuzzEvalInts(f *testing.F) {
	f.Add([]byte{0, 2, 3, 1, 2, 3, 4, 5, 6, 7, 1, 200})
	f.Add([]byte{9, 1, 4, 255, 0, 7, 3, 2, 2, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int64 {
			if len(data) == 0 {
				return 0
			}
			v := int64(int8(data[0]))
			data = data[1:]
			return v
		}
		ops := []string{"Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast", "Shape", "Size", "Neg", "Abs",
			"Add", "Sub", "Mul", "Div", "ReduceProd", "Transpose", "Concat", "Slice", "Gather", "ConstantOfShape"}
		b := newGraphBuilder().input("x", Shape{{Size: -1, Param: "N"}, D(3)})
		names := []string{"x"}
		for k := 0; len(data) > 0 && k < 6; k++ {
			// a constant of up to 3 dims of up to 4
			rank := int(uint64(next()) % 4)
			dims := make([]int64, rank)
			total := int64(1)
			for i := range dims {
				dims[i] = int64(uint64(next()) % 5)
				total *= dims[i]
			}
			vals := make([]int64, total)
			for i := range vals {
				vals[i] = next()
			}
			c := "c" + string(rune('a'+k))
			b.ints(c, dims, vals...)
			names = append(names, c)
			pick := func() string { return names[int(uint64(next())%uint64(len(names)))] }
			op := ops[int(uint64(next())%uint64(len(ops)))]
			attrs := map[string]*Attr{"axis": intAttr(next()), "axes": intsAttr(next()), "perm": intsAttr(next(), next()),
				"starts": intsAttr(next()), "ends": intsAttr(next()), "steps": intsAttr(next()), "to": intAttr(int64(Int64)),
				"value": {Kind: AttrTensor, T: NewIntTensor("", []int64{1}, []int64{next()})}}
			out := "v" + string(rune('a'+k))
			b.node(op, []string{pick(), pick()}, out, attrs)
			names = append(names, out)
		}
		b.g.Outputs = []string{names[len(names)-1]}
		foldConstantChains(b.g)
		m := &Model{Graph: b.g, Opsets: map[string]int64{"": 13}}
		_, _ = InferShapes(m, InferOptions{Lenient: true, Fold: true, Inputs: map[string]Shape{"x": ShapeOf(2, 3)}})
	})
}

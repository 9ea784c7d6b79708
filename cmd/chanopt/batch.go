package main

import (
	"fmt"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
)

// fixedBatch is a model exported with a batch of 1 fixed in its input (and usually its outputs),
// as most exporters do by default. chanopt runs such a model on batches of images through a copy
// whose batch dims are symbolic; the file it writes keeps the fixed dims (restore).
type fixedBatch struct {
	names []string // the graph inputs and outputs whose first dim was 1
}

// relaxBatch returns m itself when its input's first dim is not fixed at 1; otherwise a copy with
// that dim, and the same dim of the outputs, made symbolic, after checking that the copy runs a
// batch of two. The error says why the model cannot run batches.
func relaxBatch(path string, m *onnx.Model) (*onnx.Model, *fixedBatch, error) {
	g := m.Graph
	if len(g.Inputs) != 1 {
		return m, nil, nil
	}
	v := g.Values[g.Inputs[0]]
	if v == nil || len(v.Shape) == 0 || v.Shape[0].Size != 1 || !v.Shape.Static() {
		return m, nil, nil
	}
	r := m.Clone()
	fb := &fixedBatch{}
	for _, name := range append(append([]string(nil), g.Inputs...), g.Outputs...) {
		val := r.Graph.Values[name]
		if val == nil || len(val.Shape) == 0 || val.Shape[0].Size != 1 {
			continue
		}
		s := val.Shape.Clone()
		s[0] = onnx.Dim{Size: -1, Param: "batch"}
		r.Graph.Values[name] = &onnx.Value{Name: val.Name, Type: val.Type, Shape: s}
		fb.names = append(fb.names, name)
	}
	// A probe: a Reshape to a constant batch of 1 (x.view(1, -1)) makes the copy fail on batches.
	p, err := engine.Compile(r, engine.Options{Threads: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	defer p.Close()
	dims := []int{2}
	for _, d := range v.Shape[1:] {
		dims = append(dims, int(d.Size))
	}
	x := engine.Zeros(dims...)
	if v.Type.IsInt() {
		x = &engine.Tensor{Shape: dims, Ints: make([]int64, x.Len())}
	}
	if _, err := p.RunSlice(x); err != nil {
		return nil, nil, fmt.Errorf("%s: the model fixes its batch at 1 and cannot run batches of images (%v); export it with a symbolic batch dim", path, err)
	}
	return r, fb, nil
}

// restore puts the fixed batch dims back on a model made from the relaxed copy.
func (fb *fixedBatch) restore(m *onnx.Model) {
	if fb == nil {
		return
	}
	for _, name := range fb.names {
		val := m.Graph.Values[name]
		if val == nil || len(val.Shape) == 0 {
			continue
		}
		s := val.Shape.Clone()
		s[0] = onnx.D(1)
		m.Graph.Values[name] = &onnx.Value{Name: val.Name, Type: val.Type, Shape: s}
	}
}

package optimizer

import "github.com/chanopt/chanopt/onnx"

// symbolicDims is a model whose inputs leave dims other than the batch symbolic (a detector or a
// text-line classifier exported for any image size), worked on through a copy with those dims
// fixed at the shapes the costs are measured at: batch sizes are planned from activation sizes,
// and unknown dims would count as 1 (a 96×384 map planned as 1×1). The batch stays symbolic. The
// result gets the original's declared input and output shapes back, so it takes any size as the
// original does.
type symbolicDims struct {
	declared map[string]onnx.Shape // the original's inputs and outputs as declared
}

// pinInputs returns m itself when every input's dims after the first are static, else a copy
// with them fixed at shapes, and what restores the result.
func pinInputs(m *onnx.Model, shapes map[string]onnx.Shape) (*onnx.Model, *symbolicDims) {
	g := m.Graph
	pin := false
	for _, name := range g.Inputs {
		v, s := g.Values[name], shapes[name]
		if v == nil || len(v.Shape) < 2 || len(s) != len(v.Shape) || !s.Static() {
			continue
		}
		if !v.Shape[1:].Static() {
			pin = true
		}
	}
	if !pin {
		return m, nil
	}
	sd := &symbolicDims{declared: map[string]onnx.Shape{}}
	for _, name := range append(append([]string(nil), g.Inputs...), g.Outputs...) {
		if v := g.Values[name]; v != nil && v.Shape != nil {
			sd.declared[name] = v.Shape.Clone()
		}
	}
	c := m.Clone()
	for _, name := range c.Graph.Inputs {
		v, s := c.Graph.Values[name], shapes[name]
		if v == nil || len(v.Shape) < 2 || len(s) != len(v.Shape) || !s.Static() {
			continue
		}
		fixed := s.Clone()
		fixed[0] = v.Shape[0] // the batch as declared
		c.Graph.Values[name] = &onnx.Value{Name: v.Name, Type: v.Type, Shape: fixed}
	}
	return c, sd
}

// restore puts the original's declared input and output shapes back on a model made from the
// pinned copy (nil: nothing was pinned).
func (sd *symbolicDims) restore(m *onnx.Model) {
	if sd == nil {
		return
	}
	for name, s := range sd.declared {
		if v := m.Graph.Values[name]; v != nil && len(v.Shape) == len(s) {
			m.Graph.Values[name] = &onnx.Value{Name: v.Name, Type: v.Type, Shape: s.Clone()}
		}
	}
}

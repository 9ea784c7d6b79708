package optimizer

import (
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// TestPinInputs: a model with symbolic H and W is worked on through a copy with them fixed (the
// batch left symbolic) and the result gets the symbolic dims back; a model whose dims are static
// but for the batch is used as it is.
func TestPinInputs(t *testing.T) {
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	in := m.Graph.Inputs[0]
	at := map[string]onnx.Shape{in: {onnx.D(1), onnx.D(1), onnx.D(28), onnx.D(28)}}
	if work, sd := pinInputs(m, at); work != m || sd != nil {
		t.Errorf("static model: got a copy (%v)", sd)
	}
	batch := m.Graph.Values[in].Shape[0]
	sym := onnx.Shape{batch, onnx.D(1), {Size: -1, Param: "H"}, {Size: -1, Param: "W"}}
	m.Graph.Values[in] = &onnx.Value{Name: in, Type: m.Graph.Values[in].Type, Shape: sym}
	work, sd := pinInputs(m, at)
	if work == m || sd == nil {
		t.Fatal("symbolic H and W: want a pinned copy")
	}
	want := onnx.Shape{batch, onnx.D(1), onnx.D(28), onnx.D(28)}
	if got := work.Graph.Values[in].Shape; !got.Equal(want) {
		t.Errorf("pinned input %v, want %v", got, want)
	}
	if got := m.Graph.Values[in].Shape; !got.Equal(sym) {
		t.Errorf("original changed to %v", got)
	}
	res := work.Clone()
	sd.restore(res)
	if got := res.Graph.Values[in].Shape; !got.Equal(sym) {
		t.Errorf("restored input %v, want %v", got, sym)
	}
}

package engine

import (
	"math"
	"slices"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// TestSliceMatchesInference runs Slice in the engine and through shape inference: both resolve the
// range through onnx.SliceRange, so they must agree on the shape, and the values must be the ones
// ONNX Runtime 1.30 gives for the same Slice on [0 1 2 3 4].
func TestSliceMatchesInference(t *testing.T) {
	tests := []struct {
		start, end, step int64
		want             []float32
	}{
		{-10, -20, -1, []float32{0}}, // numpy takes nothing here; the ONNX spec and ORT take element 0
		{-10, -20, 1, []float32{}},
		{10, -20, -1, []float32{4, 3, 2, 1, 0}},
		{2, -10, -2, []float32{2, 0}},
		{math.MaxInt64, math.MinInt64, -1, []float32{4, 3, 2, 1, 0}},
		{math.MinInt64, math.MaxInt64, 2, []float32{0, 2, 4}},
		{4, 0, -3, []float32{4, 1}},
		{1, 3, -1, []float32{}},
	}
	for _, tc := range tests {
		// Import lifts constant starts/ends/axes/steps into attributes; the IR form is that.
		ints := func(v int64) *onnx.Attr { return &onnx.Attr{Kind: onnx.AttrInts, Ints: []int64{v}} }
		m := newIRModel(13).input("x", 5).node("Slice", []string{"x"}, []string{"y"},
			map[string]*onnx.Attr{"starts": ints(tc.start), "ends": ints(tc.end), "axes": ints(0), "steps": ints(tc.step)}).output("y")
		if _, err := onnx.InferShapes(m, onnx.InferOptions{}); err != nil {
			t.Fatalf("Slice(%d, %d, %d): inference: %v", tc.start, tc.end, tc.step, err)
		}
		inferred := m.Graph.Values["y"].Shape
		p, err := Compile(m, Options{Threads: 1})
		if err != nil {
			t.Fatalf("Slice(%d, %d, %d): %v", tc.start, tc.end, tc.step, err)
		}
		out, err := p.RunSlice(&Tensor{Shape: []int{5}, Data: []float32{0, 1, 2, 3, 4}})
		p.Close()
		if err != nil {
			t.Fatalf("Slice(%d, %d, %d): %v", tc.start, tc.end, tc.step, err)
		}
		if !slices.Equal(out[0].Data, tc.want) || len(inferred) != 1 || inferred[0] != onnx.D(int64(len(tc.want))) {
			t.Errorf("Slice(%d, %d, %d): engine %v, inferred shape %v; want %v", tc.start, tc.end, tc.step, out[0].Data, inferred, tc.want)
		}
	}
}

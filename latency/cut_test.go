package latency

import (
	"testing"
	"time"

	"github.com/chanopt/chanopt/onnx"
)

func TestPartOf(t *testing.T) {
	for _, c := range []struct {
		node string
		part int
		ok   bool
	}{
		{"y_b3_nchwc", 3, true},
		{"/layer1/conv_b1/Conv_b12", 12, true}, // the last _b<i> is the part's
		{"/stem/Relu_output_0_b0_nchwc", 0, true},
		{"/stem/Relu_output_0_b7_bias", 7, true},
		{"ReorderInput_token_4", 0, false},
		{"/body_b/Conv", 0, false},
	} {
		if p, ok := partOf(c.node); p != c.part || ok != c.ok {
			t.Errorf("partOf(%q) = %d, %v; want %d, %v", c.node, p, ok, c.part, c.ok)
		}
	}
}

// widestConv is the bundled ResNet-8's widest (non-diagonal) conv with its graph's shapes
// inferred at batch 16.
func widestConv(t *testing.T) (*onnx.Model, *layer) {
	t.Helper()
	a := analyse(t, "../models/resnet8.onnx")
	m := a.Model.Clone()
	in := a.Model.Graph.Inputs[0]
	shape := m.Graph.Values[in].Shape.Clone()
	shape[0] = onnx.D(16)
	if _, err := onnx.InferShapes(m, onnx.InferOptions{Inputs: map[string]onnx.Shape{in: shape}, Lenient: true}); err != nil {
		t.Fatal(err)
	}
	var widest *layer
	for _, l := range findLayers(m.Graph) {
		if l.nodes[0].OpType == "Conv" && !l.diagonal && (widest == nil || l.outFull*l.inFull > widest.outFull*widest.inFull) {
			widest = l
		}
	}
	if widest == nil {
		t.Fatal("no conv layer in resnet8")
	}
	return m, widest
}

// TestTimeParts times the bundled ResNet-8's widest conv at three output widths side by side in
// one model: every part gets a time, and a quarter of the output channels takes less time than
// all of them (the parts run in the same runs, so the machine's load cannot reverse that).
func TestTimeParts(t *testing.T) {
	requireORT(t)
	m, l := widestConv(t)
	parts := []part{{l, branch{l.inFull, l.outFull}}, {l, branch{l.inFull, l.outFull / 2}}, {l, branch{l.inFull, l.outFull / 4}}}
	times, err := timeParts(m, parts, 1, 1, 0, ladderOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s at %d→%d, %d, %d: %.3f, %.3f, %.3f ms", l.nodes[0].Label(), l.inFull, l.outFull, l.outFull/2, l.outFull/4,
		times[0], times[1], times[2])
	for i, v := range times {
		if v <= 0 {
			t.Errorf("part %d: time %v", i, v)
		}
	}
	if times[2] >= times[0] {
		t.Errorf("a quarter of the outputs took %.3f ms, all of them %.3f ms", times[2], times[0])
	}
}

// TestTimeSideBySideChunks bounds a model of parts side by side below two parts' tensors, so every
// part after the first is timed in a model of its own beside the first (the costliest), and
// scaled by it: the full width comes out as timed in the first model, and narrower widths below it.
func TestTimeSideBySideChunks(t *testing.T) {
	requireORT(t)
	m, l := widestConv(t)
	parts := []part{{l, branch{l.inFull, l.outFull}}, {l, branch{l.inFull, l.outFull / 2}}, {l, branch{l.inFull, l.outFull / 4}}}
	saved := sideBySideBytes
	defer func() { sideBySideBytes = saved }()
	sideBySideBytes = 4 * (l.input.NumElements() + l.plane(m.Graph)*int64(l.outFull)) // one full-width part
	times, err := timeSideBySide(m, parts, 1, 1, 0, ladderOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chunked: %.3f, %.3f, %.3f ms", times[0], times[1], times[2])
	if !(0 < times[2] && times[2] < times[0] && 0 < times[1] && times[1] < times[0]) {
		t.Errorf("chunked times %v: want narrower widths faster than the full width", times)
	}
}

// TestProfileOverhead: the profiler's cost per node is measured (positive) and small next to any
// layer worth timing (under 100 µs), and taking it off never leaves a node less than the
// profile's resolution.
func TestProfileOverhead(t *testing.T) {
	requireORT(t)
	c, err := profileOverhead(13, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the profiler adds %v a node", c)
	if c <= 0 || c > 100*time.Microsecond {
		t.Errorf("overhead %v, want within (0, 100 µs]", c)
	}
	if got := kernelTime(c/2, c); got != time.Microsecond {
		t.Errorf("kernelTime(%v, %v) = %v, want 1µs", c/2, c, got)
	}
	if got := kernelTime(c+40*time.Microsecond, c); got != 40*time.Microsecond {
		t.Errorf("kernelTime(%v, %v) = %v, want 40µs", c+40*time.Microsecond, c, got)
	}
}

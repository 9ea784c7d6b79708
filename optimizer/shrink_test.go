package optimizer

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// TestBudgetOfOne: a budget of 1 keeps every channel, so the model comes back unchanged (the
// same bytes when saved) with nothing searched, repaired or timed, for every budget kind.
func TestBudgetOfOne(t *testing.T) {
	m, err := onnx.Load("../models/resnet8.onnx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	want := filepath.Join(dir, "original.onnx")
	if err := onnx.Save(want, m, onnx.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantBytes, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []BudgetKind{MACs, Params, Latency} {
		opt := DefaultOptions()
		opt.Budget = Budget{Kind: kind, Ratio: 1}
		opt.Runtime = blockRuntime{grids: []int{1, 8}, offGrid: 2}
		res, err := Shrink(context.Background(), m, opt)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		r := res.Report
		if r.After != r.Before || r.SearchStats != nil || r.Distill != nil || r.Runtime != nil || r.LatencySearch != nil {
			t.Errorf("%s: want the costs unchanged and nothing searched, repaired or timed; got after %+v (before %+v), search %v, distill %v, runtime %v",
				kind, r.After, r.Before, r.SearchStats, r.Distill, r.Runtime)
		}
		for _, g := range r.Groups {
			if g.Kept != g.Channels {
				t.Errorf("%s: group %v keeps %d of %d channels", kind, g.ID, g.Kept, g.Channels)
			}
		}
		if res.Model == m {
			t.Errorf("%s: the result is the caller's model itself, not a copy", kind)
		}
		got := filepath.Join(dir, string(kind)+".onnx")
		if err := onnx.Save(got, res.Model, onnx.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, wantBytes) {
			t.Errorf("%s: the model saved differs from the original saved (%d against %d bytes, %v)", kind, len(b), len(wantBytes), err)
		}
	}
}

// TestTimingDependence: a result says what made it depend on timing, and says nothing when
// nothing did.
func TestTimingDependence(t *testing.T) {
	cases := []struct {
		name string
		rep  Report
		want []string // substrings, one per reason, in order
	}{
		{"all proposals made, one grid", Report{SearchStats: &SearchStats{StoppedBy: stoppedByIterations, Iterations: 150},
			Runtime: &RuntimeReport{Runtime: "onnxruntime", RoundTo: 8}}, nil},
		{"search stopped by time", Report{SearchStats: &SearchStats{StoppedBy: stoppedByTime, Iterations: 37}},
			[]string{"after 37 proposals"}},
		{"grid chosen by timing", Report{Runtime: &RuntimeReport{Runtime: "onnxruntime", RoundTo: 16,
			Grids: []GridTrial{{RoundTo: 1}, {RoundTo: 8}, {RoundTo: 16}}}}, []string{"multiples of 16"}},
		{"latency budget and time limit", Report{SearchStats: &SearchStats{StoppedBy: stoppedByTime, Iterations: 2},
			LatencySearch: &LatencySearch{}}, []string{"time limit", "latency budget"}},
		{"fine-tune set by its time limit", Report{Distill: &DistillReport{Stages: []Stage{{Name: "refit"}, {Name: "fine-tune", TimeBound: true}}}},
			[]string{"fine-tune's schedule"}},
	}
	for _, c := range cases {
		got := timingDependence(&c.rep)
		if len(got) != len(c.want) {
			t.Errorf("%s: got %q, want %d reasons", c.name, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: reason %d is %q, want it to name %q", c.name, i, got[i], w)
			}
		}
	}
}

// TestAccuracyOf: the report's accuracy is checked only on the user's held-back images: accuracy
// with labels, agreement without, nothing without data or with only synthetic images.
func TestAccuracyOf(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	data := func(acc, teacher *float64) *DistillReport {
		return &DistillReport{Mode: "data", HeldBack: 600, Teacher: teacher, Stages: []Stage{
			{Name: "refit", Kept: true, Agreement: Agreement{Top1: 0.9, Accuracy: acc}},
			{Name: "fine-tune", Kept: true, Agreement: Agreement{Top1: 0.97, Accuracy: acc}},
		}}
	}
	cases := []struct {
		name string
		d    *DistillReport
		want AccuracyReport
	}{
		{"no repair", nil, AccuracyReport{}},
		{"synthetic images only", &DistillReport{Mode: "data-free", Stages: []Stage{{Name: "fine-tune", Kept: true, Agreement: Agreement{Top1: 0.5}}}}, AccuracyReport{}},
		{"data, no labels", data(nil, nil), AccuracyReport{Checked: true, Images: 600, Figure: FigureAgreement, Original: 100, Slim: 97, Drop: 3, Top1Agreement: 97}},
		{"data and labels", data(f(0.88), f(0.9)), AccuracyReport{Checked: true, Images: 600, Figure: FigureAccuracy, Original: 90, Slim: 88, Drop: 2, Top1Agreement: 97}},
	}
	for _, c := range cases {
		got := accuracyOf(&Report{Distill: c.d})
		const eps = 1e-9
		if got.Checked != c.want.Checked || got.Images != c.want.Images || got.Figure != c.want.Figure ||
			math.Abs(got.Original-c.want.Original) > eps || math.Abs(got.Slim-c.want.Slim) > eps || math.Abs(got.Drop-c.want.Drop) > eps ||
			math.Abs(got.Top1Agreement-c.want.Top1Agreement) > eps || got.Margin != 0 {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

package optimizer

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
)

// TestValidateRefusesNonsense: every option out of its range, NaN or infinite, is an
// *OptionsError naming it; the defaults with a budget pass.
func TestValidateRefusesNonsense(t *testing.T) {
	base := DefaultOptions()
	base.Budget = Budget{Kind: MACs, Ratio: 0.5}
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"epochs NaN", func(o *Options) { o.Epochs = math.NaN() }, "epochs"},
		{"epochs -1", func(o *Options) { o.Epochs = -1 }, "epochs"},
		{"epochs Inf", func(o *Options) { o.Epochs = math.Inf(1) }, "epochs"},
		{"lr NaN", func(o *Options) { o.LR = math.NaN() }, "learning rate"},
		{"lr -1", func(o *Options) { o.LR = -1 }, "learning rate"},
		{"lr Inf", func(o *Options) { o.LR = math.Inf(1) }, "learning rate"},
		{"threads -1", func(o *Options) { o.Threads = -1 }, "threads"},
		{"iterations -1", func(o *Options) { o.Iterations = -1 }, "iterations"},
		{"round-to -1", func(o *Options) { o.RoundTo = -1 }, "round-to"},
		{"synthetic -1", func(o *Options) { o.Synthetic = -1 }, "synthetic"},
		{"synthetic 1e9", func(o *Options) { o.Synthetic = 1e9 }, "synthetic"},
		{"batch 1e9", func(o *Options) { o.Batch = 1e9 }, "batch"},
		{"search time -1s", func(o *Options) { o.SearchTime = -time.Second }, "times"},
		{"distill time -1s", func(o *Options) { o.DistillTime = -time.Second }, "times"},
		{"hold-back NaN", func(o *Options) { o.HoldBack = math.NaN() }, "hold-back"},
		{"max drop NaN", func(o *Options) { o.MaxDrop = math.NaN() }, "maximum drop"},
		{"max drop -1", func(o *Options) { o.MaxDrop = -1 }, "maximum drop"},
		{"max drop 101", func(o *Options) { o.MaxDrop = 101 }, "maximum drop"},
		{"no ratio, unknown kind", func(o *Options) { o.Budget = Budget{Kind: "flops"} }, "budget kind"},
		{"ratio 1.5", func(o *Options) { o.Budget.Ratio = 1.5 }, "budget"},
		{"adapt, compensate", func(o *Options) { o.Adapt, o.Repair = true, RepairCompensate }, "distill repair"},
		{"adapt, no epochs", func(o *Options) { o.Adapt, o.Epochs = true, 0 }, "epochs"},
		{"adapt, latency", func(o *Options) { o.Adapt, o.Budget = true, Budget{Kind: Latency, Ratio: 0.5} }, "latency"},
	}
	for _, c := range cases {
		o := base
		c.edit(&o)
		err := o.Validate()
		var oe *OptionsError
		if !errors.As(err, &oe) {
			t.Errorf("%s: got %v, want an *OptionsError", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q does not name %q", c.name, err, c.want)
		}
	}
}

// TestAccuracyFirstOptions: no budget is valid (accuracy first); a maximum drop needs data, and
// with data and no budget the repair must measure a figure. These are checked against the model
// before any work.
func TestAccuracyFirstOptions(t *testing.T) {
	images := dataset.NewSet(MinImages, 1, 2, 2, make([]float32, MinImages*4))
	m := &onnx.Model{Graph: &onnx.Graph{Inputs: []string{"x"}}}
	cases := []struct {
		name string
		edit func(*Options)
		want string // "" for no error
	}{
		{"no budget, no data", func(o *Options) {}, ""},
		{"no budget, data", func(o *Options) { o.Data = images }, ""},
		{"latency kind, no ratio", func(o *Options) { o.Budget.Kind = Latency; o.Data = images }, ""},
		{"max drop without data", func(o *Options) { o.MaxDrop = 1 }, "needs data"},
		{"max drop and a budget without data", func(o *Options) { o.MaxDrop = 1; o.Budget = Budget{Kind: MACs, Ratio: 0.5} }, "needs data"},
		{"no budget, data, compensation only", func(o *Options) { o.Data = images; o.Repair = RepairCompensate }, "measures none"},
		{"max drop, budget, data, no repair", func(o *Options) {
			o.Data, o.MaxDrop, o.Repair, o.Budget = images, 1, RepairNone, Budget{Kind: MACs, Ratio: 0.5}
		}, "measures none"},
		{"budget, data, compensation only", func(o *Options) {
			o.Data, o.Repair, o.Budget = images, RepairCompensate, Budget{Kind: MACs, Ratio: 0.5}
		}, ""},
		{"adapt without data", func(o *Options) { o.Adapt, o.Budget = true, Budget{Kind: MACs, Ratio: 0.5} }, "give data"},
		{"adapt, no budget, data", func(o *Options) { o.Adapt, o.Data = true, images }, ""},
	}
	for _, c := range cases {
		o := DefaultOptions()
		c.edit(&o)
		err := o.Validate()
		if err == nil {
			err = o.withDefaults().checkModel(m)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

package optimizer

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
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

package optimizer

import (
	"math"
	"testing"
)

// TestNextRatio: the next budget tried stays inside the bracket, at least a fifth from either
// end; it is the midpoint while the lower end's drop is unknown, and aims by false position at
// three quarters of the allowed drop once both drops are known.
func TestNextRatio(t *testing.T) {
	cases := []struct {
		name                   string
		lo, loDrop, hi, hiDrop float64
		loKnown                bool
		maxDrop, want          float64
	}{
		{"lower drop unknown: midpoint", 0.5, 0, 1, 0, false, 1, 0.75},
		{"far too much at 0.5: clamped a fifth below the original", 0.5, 7, 1, 0, true, 1, 0.9},
		{"false position inside the bracket", 0.5, 3, 1, 0, true, 1, 0.875},
		{"both ends measured", 0.9, 2, 0.9625, 0.5, true, 1, 0.95},
		{"upper end already near the limit: clamped above the lower", 0.8, 1.2, 0.9, 0.9, true, 1, 0.88},
		{"a drop that shrinks with the cut (noise): midpoint", 0.5, 0.2, 1, 0.5, true, 1, 0.75},
	}
	for _, c := range cases {
		got := nextRatio(c.lo, c.loDrop, c.hi, c.hiDrop, c.loKnown, c.maxDrop)
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: nextRatio = %.4f, want %.4f", c.name, got, c.want)
		}
		if w := c.hi - c.lo; got < c.lo+w/5-1e-12 || got > c.hi-w/5+1e-12 {
			t.Errorf("%s: %.4f outside the inner three fifths of (%g, %g)", c.name, got, c.lo, c.hi)
		}
	}
}

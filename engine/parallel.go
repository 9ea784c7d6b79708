package engine

// rangeTask splits [0, n) into parts contiguous ranges and calls fn on each. Ops build the
// function once (a method value) and reuse the task, so running it allocates nothing.
type rangeTask struct {
	n, parts int
	fn       func(lo, hi int)
}

func (t *rangeTask) do(_, i int) {
	lo, hi := split(t.n, t.parts, i)
	if lo < hi {
		t.fn(lo, hi)
	}
}

// parallelRange runs t.fn over [0, n), split across the workers when work (roughly the number of
// element operations) is large enough to pay for it.
func (c *ctx) parallelRange(n, work int, t *rangeTask) {
	t.n, t.parts = n, c.chunks(n, work)
	if t.parts <= 1 {
		if n > 0 {
			t.fn(0, n)
		}
		return
	}
	c.parallel(t.parts, t)
}

package engine

import (
	"errors"
	"sort"
	"time"
)

// NodeTimes runs the model runs times on the inputs and returns, per step label (the node's name,
// or its first output when unnamed), the median time of that step. Compile with NoFusion to time
// every node on its own; a fused step carries the label of its chain's last node.
func (p *Program) NodeTimes(inputs []*Tensor, runs int) (map[string]time.Duration, error) {
	if _, err := p.RunSlice(inputs...); err != nil { // plans the run for these shapes
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("engine: program is closed")
	}
	pl := p.graphs[""].last
	if pl == nil {
		return nil, errors.New("engine: nothing to profile")
	}
	samples := make([][]time.Duration, len(pl.steps))
	for r := 0; r < runs; r++ {
		for i := range pl.steps {
			ps := &pl.steps[i]
			t0 := time.Now()
			if err := ps.st.op.run(&pl.ctx, ps.in, ps.out); err != nil {
				return nil, ps.st.errorf(err)
			}
			samples[i] = append(samples[i], time.Since(t0))
		}
	}
	out := make(map[string]time.Duration, len(pl.steps))
	for i, s := range samples {
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		out[pl.steps[i].st.label] += s[len(s)/2]
	}
	return out, nil
}

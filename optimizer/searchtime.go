package optimizer

import (
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
)

// searchForwardCost is the forward time per image a time-limited data search plans with: the
// planned cost (forwardCost, at engineMACRate), or the time one pass over a few of the images
// measures when that is slower. The plan's rate is what the engine reaches on 224×224 nets; small
// nets run far below it (many small convs, per-op overheads) and a shared machine runs everything
// slower, so the plan alone sized inception_lrelu's fitness sets for 40 evaluations and its
// 2-minute search made 16. The measurement only ever shrinks the sets: where the plan holds, the
// same inputs and seed give the same sets on any machine.
func searchForwardCost(m *onnx.Model, set *dataset.Set, batch, threads int) (time.Duration, error) {
	planned, err := forwardCost(m, set)
	if err != nil {
		return 0, err
	}
	// About a second of planned work, between 4 and 64 images.
	n := 64
	if planned > 0 {
		n = int(time.Second / planned)
	}
	n = min(set.N, max(4, min(64, n)))
	p, err := engine.Compile(m, engine.Options{Threads: threads})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	t0 := time.Now()
	if _, _, err := Logits(p, set.Head(n), inferBatch(m, batch)); err != nil {
		return 0, err
	}
	return max(planned, time.Since(t0)/time.Duration(n)), nil
}

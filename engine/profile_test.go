package engine

import (
	"cmp"
	"math/rand"
	"os"
	"sort"
	"testing"
	"time"
)

// BenchmarkProfileSteps prints where a run's time goes, per step, for $CHANOPT_PROFILE_MODEL
// (the bundled resnet8 when unset): a development aid, run with
// `CHANOPT_PROFILE_MODEL=m.onnx go test ./engine -run - -bench ProfileSteps -benchtime 1x`.
func BenchmarkProfileSteps(b *testing.B) {
	path := cmp.Or(os.Getenv("CHANOPT_PROFILE_MODEL"), "../models/resnet8.onnx")
	for _, batch := range []int{1, 32} {
		m, p := loadProgram(b, path, Options{Threads: 2})
		shape, err := inputShape(m, p.Inputs()[0], batch)
		if err != nil {
			b.Fatal(err)
		}
		x := randomInput(rand.New(rand.NewSource(1)), shape)
		if _, err := p.RunSlice(x); err != nil {
			b.Fatal(err)
		}
		pl := p.graphs[""].last
		times := make([]time.Duration, len(pl.steps))
		const runs = 50
		var total time.Duration
		for r := 0; r < runs; r++ {
			t0 := time.Now()
			for i := range pl.steps {
				ps := &pl.steps[i]
				s := time.Now()
				if err := ps.st.op.run(&pl.ctx, ps.in, ps.out); err != nil {
					b.Fatal(err)
				}
				times[i] += time.Since(s)
			}
			total += time.Since(t0)
		}
		idx := make([]int, len(times))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return times[idx[a]] > times[idx[b]] })
		b.Logf("batch %d: %.3f ms per run", batch, float64(total)/runs/1e6)
		for _, i := range idx[:min(12, len(idx))] {
			ps := pl.steps[i]
			b.Logf("  %7.3f ms  %-40s %-30s out %v", float64(times[i])/runs/1e6, ps.st.opType, ps.st.label, ps.out[0].Shape)
		}
	}
}

package engine

import (
	"math"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// gradStorage is the distinct float storage behind a plan's non-parameter gradient slots.
func gradStorage(pl *tplan) int {
	seen := map[*float32]int{}
	for _, sl := range pl.slots {
		if sl.param || cap(sl.buf) == 0 {
			continue
		}
		p := &sl.buf[:1][0]
		seen[p] = max(seen[p], cap(sl.buf))
	}
	total := 0
	for _, c := range seen {
		total += c
	}
	return total
}

// TestTrainSharedGradSlots trains each bundled model for three steps twice, once with gradient
// slots sharing storage where their lifetimes allow (the default) and once with a buffer each,
// and wants the same parameter gradients bit for bit and, on these nets, less than half the
// storage. It also seeds an intermediate value (BackwardFrom), which must give the gradients of
// private storage.
func TestTrainSharedGradSlots(t *testing.T) {
	for _, path := range testenv.BundledModels(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, err := onnx.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			shape, err := trainShape(m, 8)
			if err != nil {
				t.Fatal(err)
			}
			shared, err := NewTrainer(m, TrainOptions{Threads: 2, SkipInputGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			defer shared.Close()
			private, err := NewTrainer(m, TrainOptions{Threads: 2, SkipInputGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			defer private.Close()
			rng := rand.New(rand.NewSource(3))
			out := m.Graph.Outputs[0]
			// a value in the middle of the graph that gradients flow through
			mid := ""
			for _, n := range m.Graph.Nodes[len(m.Graph.Nodes)/2:] {
				if n.OpType == "Conv" || n.OpType == "Relu" {
					mid = n.Outputs[0]
					break
				}
			}
			for step := 0; step < 4; step++ {
				x := evalImages(t, shape, rng)
				seeds := map[string]*Tensor{}
				var grads [2][][]float32
				for k, tr := range []*Trainer{shared, private} {
					vals, err := tr.ForwardKeep(x, mid)
					if err != nil {
						t.Fatal(err)
					}
					if k == 1 && tr.last.sharedGrads {
						tr.bindGradSlots(tr.last, false)
					}
					if k == 0 {
						y := vals[out]
						g := randTensor(rand.New(rand.NewSource(int64(step))), -1, 1, y.Shape...)
						seeds[out] = g
						if step == 3 && mid != "" {
							// the last step also seeds an intermediate value
							f := vals[mid]
							seeds[mid] = randTensor(rand.New(rand.NewSource(7)), -1, 1, f.Shape...)
						}
					}
					tr.ZeroGrad()
					if err := tr.BackwardFrom(seeds); err != nil {
						t.Fatal(err)
					}
					for _, p := range tr.Params() {
						grads[k] = append(grads[k], append([]float32(nil), p.Grad...))
					}
				}
				for i, p := range shared.Params() {
					for j := range grads[0][i] {
						if math.Float32bits(grads[0][i][j]) != math.Float32bits(grads[1][i][j]) {
							t.Fatalf("step %d: %s[%d]: shared slots give %g, private %g", step, p.Name, j, grads[0][i][j], grads[1][i][j])
						}
					}
				}
				if step == 2 {
					s, p := gradStorage(shared.last), gradStorage(private.last)
					t.Logf("gradient storage: %d floats shared, %d private", s, p)
					if !shared.last.sharedGrads || 2*s > p {
						t.Errorf("gradient storage: %d floats shared, %d private: want less than half", s, p)
					}
				}
			}
			if mid != "" && shared.last.sharedGrads {
				t.Errorf("seeding %s left the plan's gradient storage shared", mid)
			}
		})
	}
}

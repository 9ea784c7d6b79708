package rewrite_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
	"github.com/chanopt/chanopt/rewrite"
)

// randomKeep keeps a random ~60% of every prunable group (the same count in each block, or ~60% of
// the blocks when blocks go whole).
func randomKeep(a *rewrite.Analysis, rng *rand.Rand) rewrite.Keep {
	return keepRandomly(a, rng, func(n int) int {
		k := int(math.Ceil(0.6 * float64(n)))
		if k >= n && n > 1 {
			k = n - 1
		}
		return k
	})
}

// keepRandomly keeps, of every prunable group, a random choice of k(n) of its n channels, of each
// block's n channels when a grouped conv thins its blocks equally (k is asked once a group: the
// blocks are equal), or of its n blocks when they go whole.
func keepRandomly(a *rewrite.Analysis, rng *rand.Rand, k func(n int) int) rewrite.Keep {
	keep := rewrite.Keep{}
	for _, g := range a.Prunable() {
		members := g.BlockMembers()
		if members == nil {
			members = [][]int{make([]int, g.Channels)}
			for i := range members[0] {
				members[0][i] = i
			}
		}
		var idx []int
		if g.Whole {
			rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
			for _, m := range members[:k(len(members))] {
				idx = append(idx, m...)
			}
		} else {
			per := k(len(members[0]))
			for _, in := range members {
				rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
				idx = append(idx, in[:per]...)
			}
		}
		sortInts(idx)
		keep[g.ID] = idx
	}
	return keep
}

func sortInts(v []int) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// inputsFor makes a random input per graph input at batch 2.
func inputsFor(t *testing.T, m *onnx.Model, given map[string]onnx.Shape, rng *rand.Rand) []ort.Tensor {
	shapes, err := onnx.BatchOne(m.Graph, given)
	if err != nil {
		t.Fatal(err)
	}
	var ins []ort.Tensor
	for _, name := range m.Graph.Inputs {
		s := shapes[name].Sizes()
		if len(s) > 0 {
			s[0] = 2
		}
		n := int64(1)
		for _, d := range s {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		ins = append(ins, ort.Tensor{Shape: s, Data: data})
	}
	return ins
}

// modelsUnderTest lists the bundled, zoo and foreign-style models with the input shapes the
// symbolic ones need.
func modelsUnderTest(t *testing.T) map[string]map[string]onnx.Shape {
	out := map[string]map[string]onnx.Shape{}
	for _, p := range append(testenv.BundledModelsIfAny(t), testenv.ZooModels(t)...) {
		out[p] = nil
	}
	for _, f := range testenv.ForeignModels(t) {
		out[f.Path] = map[string]onnx.Shape{f.InputName: onnx.ShapeOf(f.InputShape...)}
	}
	return out
}

// TestSliceIsExact proves the slice exact on every bundled and zoo model: channels dropped from the
// slim model are silenced in the original (their filters, biases, BN scale and shift zeroed); both
// must then compute the same outputs in ONNX Runtime, and the slim model must pass onnx.checker.
func TestSliceIsExact(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	var slimPaths []string
	top := t.TempDir() // slim models stay until the checker has seen them all
	models := modelsUnderTest(t)
	paths := make([]string, 0, len(models))
	for p := range models {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		given := models[path]
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			m, err := onnx.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			a, err := rewrite.Groups(m)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(name))))
			keep := randomKeep(a, rng)
			if len(keep) == 0 {
				t.Fatalf("no prunable group")
			}
			slim, err := a.Slice(keep)
			if err != nil {
				t.Fatal(err)
			}
			masked, err := a.Mask(keep)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(top, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			slimPath, maskPath := filepath.Join(dir, "slim.onnx"), filepath.Join(dir, "masked.onnx")
			if err := onnx.Save(slimPath, slim, onnx.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := onnx.Save(maskPath, masked, onnx.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			slimPaths = append(slimPaths, slimPath)
			ins := inputsFor(t, m, given, rng)
			want, err := ort.Run(maskPath, ins)
			if err != nil {
				t.Fatalf("masked: %v", err)
			}
			got, err := ort.Run(slimPath, ins)
			if err != nil {
				t.Fatalf("slim: %v", err)
			}
			for i := range want {
				scale, diff := 0.0, 0.0
				for j, w := range want[i].Data {
					scale = math.Max(scale, math.Abs(float64(w)))
					diff = math.Max(diff, math.Abs(float64(w-got[i].Data[j])))
				}
				rel := diff / math.Max(scale, 1e-12)
				t.Logf("output %d: max |slim - masked| = %.3g (%.3g of max |output| %.3g); kept %d groups", i, diff, rel, scale, len(keep))
				if rel > 1e-5 {
					t.Errorf("output %d differs: max abs diff %.3g, relative %.3g", i, diff, rel)
				}
			}
		})
	}
	if len(slimPaths) > 0 {
		testenv.CheckModels(t, slimPaths...)
	}
}

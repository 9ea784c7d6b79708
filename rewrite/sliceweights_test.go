package rewrite_test

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// TestSliceWeights: cutting a copy of the model whose constants hold other values keeps, constant
// by constant, the values at the positions Slice keeps of the original: a copy holding each value
// doubled gives exactly Slice's constants doubled. A model with other nodes is refused.
func TestSliceWeights(t *testing.T) {
	for _, name := range []string{"resnet8", "mobilenetv2_se", "resnext", "densenet"} {
		m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := rewrite.Groups(m)
		if err != nil {
			t.Fatal(err)
		}
		keep := randomKeep(a, rand.New(rand.NewPCG(5, 6)))
		want, err := a.Slice(keep)
		if err != nil {
			t.Fatal(err)
		}
		doubled := m.Clone()
		for _, c := range doubled.Graph.Inits {
			for i := range c.Floats {
				c.Floats[i] *= 2
			}
		}
		got, err := a.SliceWeights(doubled, keep)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for cname, w := range want.Graph.Inits {
			g, ok := got.Graph.Inits[cname]
			if !ok {
				t.Errorf("%s: constant %s missing", name, cname)
				continue
			}
			if w.Floats == nil {
				continue
			}
			twice := slices.Clone(w.Floats)
			for i := range twice {
				twice[i] *= 2
			}
			if !slices.Equal(g.Floats, twice) || !slices.Equal(g.Dims, w.Dims) {
				t.Errorf("%s: constant %s is not Slice's doubled", name, cname)
			}
			n++
		}
		if n == 0 || len(got.Graph.Inits) != len(want.Graph.Inits) {
			t.Errorf("%s: %d constants compared, %d cut against %d", name, n, len(got.Graph.Inits), len(want.Graph.Inits))
		}
		other := m.Clone()
		other.Graph.Nodes = other.Graph.Nodes[1:]
		if _, err := a.SliceWeights(other, keep); err == nil {
			t.Errorf("%s: a model with other nodes was cut", name)
		}
	}
}

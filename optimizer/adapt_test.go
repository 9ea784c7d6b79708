package optimizer

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// keepAt keeps the given fraction of every prunable group (grid 1, blocks respected), channels by
// L1 importance: keeps at smaller fractions are subsets of those at larger ones.
func keepAt(a *rewrite.Analysis, frac func(g *rewrite.Group) float64) rewrite.Keep {
	w := Widths{}
	for _, g := range a.Prunable() {
		w[g.ID] = Width(g, frac(g)*float64(g.Channels), 1)
	}
	return KeepWidths(a, L1Importance(a), w)
}

// perturbed is m with every floating-point constant moved by noise: the "trained" weights, which
// differ from the original's everywhere.
func perturbed(m *onnx.Model, seed uint64) *onnx.Model {
	p := m.Clone()
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, name := range p.Graph.InitOrder {
		t := p.Graph.Inits[name]
		if t == nil || t.Floats == nil {
			continue
		}
		t.Source = nil
		for i := range t.Floats {
			t.Floats[i] += float32(0.01 + 0.01*rng.Float64())
		}
	}
	return p
}

// slotValues lists every floating-point constant a model's nodes read, by node label and input.
func slotValues(m *onnx.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, n := range m.Graph.Nodes {
		for i, in := range n.Inputs {
			if t, ok := m.Graph.Inits[in]; ok && t.Floats != nil {
				out[fmt.Sprintf("%s#%d", n.Label(), i)] = t.Floats
			}
		}
	}
	return out
}

// sameSlots reports the first (node, input) whose constant differs between two models.
func sameSlots(got, want *onnx.Model) error {
	g, w := slotValues(got), slotValues(want)
	if len(g) != len(w) {
		return fmt.Errorf("%d constants read, want %d", len(g), len(w))
	}
	for k, wv := range w {
		if !slices.Equal(g[k], wv) {
			return fmt.Errorf("%s differs (%d values, want %d)", k, len(g[k]), len(wv))
		}
	}
	return nil
}

// TestTransferWeights: the weight transfer of the adaptive sizing is exact on every bundled
// model. The "trained" student is a cut of the original with every weight perturbed, so a value
// taken from the wrong place, or from the original where the student has one, shows.
//   - Shrinking only, the transfer is the perturbed model cut fresh with the new keep: the same
//     constants, and the same outputs in the engine.
//   - Growing every group to full width and cutting back gives the student back, bit for bit.
//   - Mixed (some groups shrink, the others grow), each weight of every plain Conv is checked
//     against the original's positions Correspond gives: the student's value where the student
//     holds both its channels, the original's otherwise; each bias likewise by its output channel.
func TestTransferWeights(t *testing.T) {
	for _, name := range []string{"resnet8", "resnet8_bn", "resnext", "mobilenetv2_se", "vgg", "densenet"} {
		t.Run(name, func(t *testing.T) {
			m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			a, err := rewrite.Groups(m)
			if err != nil {
				t.Fatal(err)
			}
			trained := perturbed(m, 7)
			at, err := rewrite.Groups(trained)
			if err != nil {
				t.Fatal(err)
			}
			if len(at.Groups) != len(a.Groups) {
				t.Fatalf("the perturbed model has %d groups, the original %d", len(at.Groups), len(a.Groups))
			}
			from := keepAt(a, func(*rewrite.Group) float64 { return 0.75 })
			student, err := at.Slice(from)
			if err != nil {
				t.Fatal(err)
			}
			trace := traceModel(m)

			// Shrinking only.
			half := keepAt(a, func(*rewrite.Group) float64 { return 0.5 })
			got, err := transferWeights(a, trace, student, from, half)
			if err != nil {
				t.Fatal(err)
			}
			want, err := at.Slice(half)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameSlots(got, want); err != nil {
				t.Errorf("shrinking: %v", err)
			}
			in := m.Graph.Values[m.Graph.Inputs[0]].Shape
			img := make([]float32, 2*in[1].Size*in[2].Size*in[3].Size)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range img {
				img[i] = rng.Float32()
			}
			x := engine.NewTensor([]int{2, int(in[1].Size), int(in[2].Size), int(in[3].Size)}, img)
			if g, w := runOn(t, got, x), runOn(t, want, x); !slices.Equal(g.Data, w.Data) {
				t.Errorf("shrinking: the engine's outputs differ from the fresh cut's")
			}

			// Growing to full width and back.
			full, err := transferWeights(a, trace, student, from, rewrite.Keep{})
			if err != nil {
				t.Fatal(err)
			}
			back, err := transferWeights(a, trace, full, rewrite.Keep{}, from)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameSlots(back, student); err != nil {
				t.Errorf("grown and cut back: %v", err)
			}
			if sameSlots(full, trained) == nil || sameSlots(full, m) == nil {
				t.Errorf("grown to full width: the weights are all the student's or all the original's, want a mix")
			}

			// Mixed.
			mixed := keepAt(a, func(g *rewrite.Group) float64 { return []float64{0.5, 1}[int(g.ID)%2] })
			got, err = transferWeights(a, trace, student, from, mixed)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Slice(mixed); err != nil {
				t.Fatal(err)
			}
			corrOld, err := a.Correspond(from)
			if err != nil {
				t.Fatal(err)
			}
			corrNew, err := a.Correspond(mixed)
			if err != nil {
				t.Fatal(err)
			}
			checked, fromStudent := checkMixed(t, m, trained, got, corrOld, corrNew)
			if checked == 0 || fromStudent == 0 || fromStudent == checked {
				t.Errorf("mixed: %d values checked, %d from the student: want some of each", checked, fromStudent)
			}
		})
	}
}

// checkMixed checks every weight and bias of the plain Convs of got (cut from m as corrNew says,
// with the trained values of a student cut as corrOld says) against the original's positions,
// and counts the values checked and those that come from the student.
func checkMixed(t *testing.T, m, trained, got *onnx.Model, corrOld, corrNew map[string]rewrite.Correspondence) (checked, fromStudent int) {
	t.Helper()
	index := func(list []int, j int) int {
		if list == nil {
			return j
		}
		return list[j]
	}
	holds := func(list []int, c int) bool { return list == nil || slices.Contains(list, c) }
	for _, n := range got.Graph.Nodes {
		if n.OpType != "Conv" || n.Int("group", 1) != 1 {
			continue
		}
		label := n.Label()
		var on *onnx.Node
		for _, o := range m.Graph.Nodes {
			if o.Label() == label {
				on = o
			}
		}
		cn, co := corrNew[label], corrOld[label]
		w, ow, tw := got.Graph.Inits[n.Inputs[1]], m.Graph.Inits[on.Inputs[1]], trained.Graph.Inits[on.Inputs[1]]
		cout, cin, k := int(w.Dims[0]), int(w.Dims[1]), int(w.Dims[2]*w.Dims[3])
		ocin := int(ow.Dims[1])
		for o := 0; o < cout; o++ {
			oo := index(cn.Out, o)
			for i := 0; i < cin; i++ {
				oi := index(cn.In, i)
				src := ow
				if holds(co.Out, oo) && holds(co.In, oi) {
					src, fromStudent = tw, fromStudent+k
				}
				for p := 0; p < k; p++ {
					if got, want := w.Floats[(o*cin+i)*k+p], src.Floats[(oo*ocin+oi)*k+p]; got != want {
						t.Fatalf("%s: weight (%d, %d, %d) is %v, want %v (original channels %d, %d)", label, o, i, p, got, want, oo, oi)
					}
				}
				checked += k
			}
		}
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			b, ob, tb := got.Graph.Inits[n.Inputs[2]], m.Graph.Inits[on.Inputs[2]], trained.Graph.Inits[on.Inputs[2]]
			for o := range b.Floats {
				oo := index(cn.Out, o)
				want := ob.Floats[oo]
				if holds(co.Out, oo) {
					want, fromStudent = tb.Floats[oo], fromStudent+1
				}
				if b.Floats[o] != want {
					t.Fatalf("%s: bias %d is %v, want %v", label, o, b.Floats[o], want)
				}
				checked++
			}
		}
	}
	return checked, fromStudent
}

package optimizer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
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
			m, _, a := bundled(t, name)
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

// shapesOf lists the dims of every constant a model's nodes read, by node label and input.
func shapesOf(m *onnx.Model) map[string]string {
	out := map[string]string{}
	for _, n := range m.Graph.Nodes {
		for i, in := range n.Inputs {
			if t, ok := m.Graph.Inits[in]; ok {
				out[fmt.Sprintf("%s#%d", n.Label(), i)] = fmt.Sprint(t.Dims)
			}
		}
	}
	return out
}

// swinging is a stand-in for the groups' metric that swings by ±0.4 at every measurement, in
// opposite directions for neighbouring groups, so that the rule moves widths at every point (a
// short fine-tune of resnet8 leaves every EVBMF rank where it was).
func swinging(a *rewrite.Analysis) func(*onnx.Model) (map[rewrite.GroupID]float64, error) {
	calls := 0
	return func(*onnx.Model) (map[rewrite.GroupID]float64, error) {
		calls++
		out := map[rewrite.GroupID]float64{}
		for _, g := range a.Prunable() {
			out[g.ID] = 0.5 + 0.2*float64(1-2*((int(g.ID)+calls)%2))
		}
		return out, nil
	}
}

// adapted is one repair of a three-quarter-width student with the adaptive sizing on.
type adapted struct {
	a       *rewrite.Analysis
	m       *onnx.Model // the original
	student *onnx.Model // repaired in place
	from    rewrite.Keep
	budget  Budget
	shapes  map[string]onnx.Shape
	rep     *DistillReport
}

// adaptRun repairs a three-quarter-width student of a bundled model with the adaptive sizing on,
// under a MACs budget just above the student's, with the metric given (nil: the rank).
func adaptRun(t *testing.T, model string, metric func(*rewrite.Analysis) func(*onnx.Model) (map[rewrite.GroupID]float64, error)) adapted {
	t.Helper()
	set := labelledCalib(t, 400)
	calib, val := set.Split(0.25, 1)
	var r adapted
	var err error
	if r.m, err = onnx.Load(filepath.Join(testenv.ModelsDir(t), model+".onnx")); err != nil {
		t.Fatal(err)
	}
	r.a, r.from, r.student = threeQuarterSlice(t, r.m)
	if r.shapes, err = onnx.BatchOne(r.m.Graph, nil); err != nil {
		t.Fatal(err)
	}
	before, err := Measure(r.m, r.shapes)
	if err != nil {
		t.Fatal(err)
	}
	after, err := Measure(r.student, r.shapes)
	if err != nil {
		t.Fatal(err)
	}
	r.budget = Budget{Kind: MACs, Ratio: (float64(after.MACs) + 0.5) / float64(before.MACs)}
	corr, err := r.a.Correspond(r.from)
	if err != nil {
		t.Fatal(err)
	}
	ao := &AdaptOptions{Analysis: r.a, Keep: r.from, Budget: r.budget, Inputs: r.shapes, RoundTo: 1}
	if metric != nil {
		ao.metric = metric(r.a)
	}
	if r.rep, err = Distill(r.m, r.student, corr, calib, val, DistillOptions{Batch: 64, Threads: 2, Epochs: 2, Seed: 1, Adapt: ao}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAdaptKeepsBudget: with a metric that moves, the widths move at each of the three points of
// a two-epoch fine-tune, every allocation meets the budget when measured, and the student kept
// is exactly a cut of the original with the keep the report gives (every constant the same
// shape as a fresh cut's), costing what that cut costs. resnet8 repairs a new cut by bias
// correction, resnet8_bn by BN recalibration.
func TestAdaptKeepsBudget(t *testing.T) {
	for _, model := range []string{"resnet8", "resnet8_bn"} {
		r := adaptRun(t, model, swinging)
		ar := r.rep.Adapt
		if ar == nil {
			t.Fatalf("%s: no adapt report", model)
		}
		if ar.Points != 3 || ar.Measured != 3 {
			t.Errorf("%s: %d points planned, %d measured: want 3 for 2 epochs", model, ar.Points, ar.Measured)
		}
		if len(ar.Reallocations) == 0 {
			t.Fatalf("%s: the widths never moved", model)
		}
		base, err := Measure(r.m, r.shapes)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range ar.Reallocations {
			if len(re.Groups) == 0 || re.Cost > r.budget.Ratio {
				t.Errorf("%s: reallocation %+v: want groups changed and a cost within %.4f", model, re, r.budget.Ratio)
			}
			for _, c := range re.Groups {
				if c.Before == c.After {
					t.Errorf("%s: point %d lists group %d unchanged (%d)", model, re.Point, c.ID, c.Before)
				}
			}
		}
		fresh, err := r.a.Slice(ar.Keep)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := shapesOf(r.student), shapesOf(fresh); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the student kept is not shaped as a fresh cut with the report's keep", model)
		}
		c, err := Measure(r.student, r.shapes)
		if err != nil {
			t.Fatal(err)
		}
		if float64(c.MACs) > r.budget.Ratio*float64(base.MACs) {
			t.Errorf("%s: the student keeps %d MACs, over the budget's %.0f", model, c.MACs, r.budget.Ratio*float64(base.MACs))
		}
		moved := false
		for id, k := range ar.Keep {
			moved = moved || !slices.Equal(k, r.from[id])
		}
		if moved != (ar.KeptAfter > 0) {
			t.Errorf("%s: kept after %d reallocations, yet the keep moved: %v", model, ar.KeptAfter, moved)
		}
		t.Logf("%s: %d reallocations, kept after %d; fine-tune %+v", model, len(ar.Reallocations), ar.KeptAfter, r.rep.Stages[len(r.rep.Stages)-1].Agreement.Top1)
	}
}

// TestAdaptDeterministic: the same seed gives the same student and the same record of
// reallocations, random pushes included (the fine-tune is not bound by time here).
func TestAdaptDeterministic(t *testing.T) {
	r1, r2 := adaptRun(t, "resnet8", swinging), adaptRun(t, "resnet8", swinging)
	if err := sameSlots(r1.student, r2.student); err != nil {
		t.Errorf("same seed, different students: %v", err)
	}
	j1, _ := json.Marshal(r1.rep.Adapt)
	j2, _ := json.Marshal(r2.rep.Adapt)
	if string(j1) != string(j2) {
		t.Errorf("same seed, different records:\n%s\n%s", j1, j2)
	}
	pushed := false
	for _, re := range r1.rep.Adapt.Reallocations {
		for _, c := range re.Groups {
			pushed = pushed || c.Pushed
		}
	}
	if !pushed {
		t.Errorf("no random push in %s: the test does not cover the seeded draws", j1)
	}
}

// TestAdaptPoints: a point at the end of each epoch but the last, at least three, at most 16.
func TestAdaptPoints(t *testing.T) {
	for _, c := range []struct {
		epochs float64
		want   int
	}{{0.5, 3}, {1, 3}, {3, 3}, {4, 3}, {5, 4}, {8, 7}, {8.5, 8}, {100, 16}} {
		if got := adaptPoints(c.epochs); got != c.want {
			t.Errorf("%v epochs: %d points, want %d", c.epochs, got, c.want)
		}
	}
}

// TestFineTuneAdaptReplaces: FineTune calls Adapt at its points with the weights trained so far,
// trains a model Adapt returns from there on, and keeps the best weights with how many
// replacements they come after. Here the first point swaps the three-quarter student for the
// teacher itself, which agrees with itself better than any student can: the weights kept must be
// the teacher's shape, one replacement on.
func TestFineTuneAdaptReplaces(t *testing.T) {
	set := labelledCalib(t, 600)
	calib, val := set.Split(0.25, 1)
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, student := threeQuarterSlice(t, m)
	initial := student.Clone()
	tout, err := teacherOutputs(m, val, 64, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	var points []int
	adapt := func(point, n int, epoch float64, cur *onnx.Model) (*onnx.Model, error) {
		points = append(points, point)
		if n != 3 || epoch <= 0 || epoch >= 2 {
			t.Errorf("point %d of %d at epoch %v: want 3 points within the 2 epochs", point, n, epoch)
		}
		if point == 1 {
			if fmt.Sprint(shapesOf(cur)) != fmt.Sprint(shapesOf(initial)) || sameSlots(cur, initial) == nil {
				t.Errorf("point 1: want the student's shape with weights trained since")
			}
			return m.Clone(), nil
		}
		if fmt.Sprint(shapesOf(cur)) != fmt.Sprint(shapesOf(m)) {
			t.Errorf("point %d: the replacement is not what trains", point)
		}
		return nil, nil
	}
	res, err := FineTune(m, student, calib, val, tout, FineTuneOptions{Epochs: 2, Batch: 64, Threads: 2, Seed: 1, Adapt: adapt, AdaptPoints: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(points, []int{1, 2, 3}) {
		t.Errorf("Adapt called at points %v, want 1, 2, 3", points)
	}
	if res.Generation != 1 || fmt.Sprint(shapesOf(student)) != fmt.Sprint(shapesOf(m)) {
		t.Errorf("kept weights %d replacements on (want 1), shaped as the teacher: %v", res.Generation, fmt.Sprint(shapesOf(student)) == fmt.Sprint(shapesOf(m)))
	}
}

// TestShrinkAdapt: through Shrink, with a metric that moves the widths, the report's groups and
// costs are those of the model returned (measured again here), whichever reallocation its weights
// come after, and the budget holds.
func TestShrinkAdapt(t *testing.T) {
	set := labelledCalib(t, 400)
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8_bn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	opt := DefaultOptions()
	opt.Budget = Budget{Kind: Params, Ratio: 0.5}
	opt.Data, opt.Search, opt.Epochs, opt.RoundTo, opt.Threads, opt.Time = set, SearchUniform, 1, 1, 2, 0
	opt.Runtime = EngineRuntime{NumThreads: 2}
	opt.Adapt, opt.adaptMetric = true, swinging
	res, err := Shrink(context.Background(), m, opt)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	ar := r.Distill.Adapt
	if ar == nil || len(ar.Reallocations) == 0 {
		t.Fatalf("distill.adapt is %+v: want reallocations", ar)
	}
	shapes, err := onnx.BatchOne(m.Graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Measure(res.Model, shapes)
	if err != nil {
		t.Fatal(err)
	}
	if c.Params != r.After.Params || c.MACs != r.After.MACs || float64(c.Params) > 0.5*float64(r.Before.Params) {
		t.Errorf("the model returned costs %+v, the report says %+v (before %+v, budget half the params)", c, r.After, r.Before)
	}
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range r.Groups {
		if want := len(ar.Keep[g.ID]); ar.Keep[g.ID] != nil && g.Kept != want || ar.Keep[g.ID] == nil && g.Kept != a.Groups[i].Channels {
			t.Errorf("group %d: the report keeps %d, the adaptive sizing's keep %d", g.ID, g.Kept, want)
		}
	}
	fresh, err := a.Slice(ar.Keep)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(shapesOf(res.Model)) != fmt.Sprint(shapesOf(fresh)) {
		t.Error("the model returned is not shaped as a fresh cut with the adaptive sizing's keep")
	}
	t.Logf("%d reallocations, kept after %d", len(ar.Reallocations), ar.KeptAfter)
}

// TestAdaptRescues: from a poor allocation (resnet8's widest group cut to an eighth, the others
// whole) and a metric that asks that group to grow and the others to give, the reallocations
// widen it under the same budget, and the fine-tuning keeps the weights of a reallocated student:
// the student returned is a fresh cut's shape with the keep of that reallocation.
func TestAdaptRescues(t *testing.T) {
	set := labelledCalib(t, 600)
	calib, val := set.Split(0.25, 1)
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	var wide *rewrite.Group
	for _, g := range a.Prunable() {
		if wide == nil || g.Channels > wide.Channels {
			wide = g
		}
	}
	from := KeepWidths(a, L1Importance(a), Widths{wide.ID: wide.Channels / 8})
	student, err := a.Slice(from)
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := onnx.BatchOne(m.Graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := Measure(m, shapes)
	if err != nil {
		t.Fatal(err)
	}
	after, err := Measure(student, shapes)
	if err != nil {
		t.Fatal(err)
	}
	budget := Budget{Kind: MACs, Ratio: (float64(after.MACs) + 0.5) / float64(before.MACs)}
	calls := 0
	metric := func(*onnx.Model) (map[rewrite.GroupID]float64, error) {
		calls++
		out := map[rewrite.GroupID]float64{}
		for _, g := range a.Prunable() {
			out[g.ID] = 0.5 - 0.3*float64(calls)
			if g == wide {
				out[g.ID] = 0.6 * float64(calls)
			}
		}
		return out, nil
	}
	corr, err := a.Correspond(from)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Distill(m, student, corr, calib, val, DistillOptions{Batch: 64, Threads: 2, Epochs: 2, Seed: 1,
		Adapt: &AdaptOptions{Analysis: a, Keep: from, Budget: budget, Inputs: shapes, RoundTo: 1, metric: metric}})
	if err != nil {
		t.Fatal(err)
	}
	ar := rep.Adapt
	j, _ := json.Marshal(ar)
	width := wide.Channels // a group the keep does not list keeps every channel
	if k, ok := ar.Keep[wide.ID]; ok {
		width = len(k)
	}
	if ar.KeptAfter == 0 || width <= wide.Channels/8 {
		t.Fatalf("kept after %d reallocations, the widest group at %d of %d: want it wider, after a reallocation (%s)", ar.KeptAfter, width, wide.Channels, j)
	}
	fresh, err := a.Slice(ar.Keep)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(shapesOf(student)) != fmt.Sprint(shapesOf(fresh)) {
		t.Errorf("the student kept is not shaped as a fresh cut with the keep of reallocation %d", ar.KeptAfter)
	}
	c, err := Measure(student, shapes)
	if err != nil {
		t.Fatal(err)
	}
	if float64(c.MACs) > budget.Ratio*float64(before.MACs) {
		t.Errorf("the student keeps %d MACs, over the budget's %.0f", c.MACs, budget.Ratio*float64(before.MACs))
	}
	t.Logf("%s; agreement: %v", j, rep.Stages[len(rep.Stages)-1].Agreement.Top1)
}

// TestCarry: the merge of sorted positions and the table for unsorted ones carry the same values.
func TestCarry(t *testing.T) {
	p := func(xs ...uint32) []float32 {
		out := make([]float32, len(xs))
		for i, x := range xs {
			out[i] = math.Float32frombits(x)
		}
		return out
	}
	from := []float32{10, 11, 12, 13}
	for _, c := range []struct {
		name   string
		to, at []float32
	}{
		{"sorted", p(0, 2, 3, 5, 7), p(1, 2, 5, 6)},
		{"unsorted", p(0, 2, 3, 5, 7), p(1, 5, 2, 6)},
	} {
		vals := []float32{-1, -1, -1, -1, -1}
		carry(vals, from, c.to, c.at, 8)
		want := []float32{-1, 11, -1, 12, -1}
		if c.name == "unsorted" {
			want = []float32{-1, 12, -1, 11, -1}
		}
		if !slices.Equal(vals, want) {
			t.Errorf("%s: got %v, want %v", c.name, vals, want)
		}
	}
}

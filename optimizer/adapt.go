package optimizer

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// AdaptOptions turns on CONetV2's adaptive sizing during the KD fine-tune (Options.Adapt): at a
// few points of the training each prunable group's rank metric is measured on the student, and
// channels move between groups by how it changed, under the same budget (see adapter).
type AdaptOptions struct {
	// Analysis holds the original's channel groups; its model is the teacher.
	Analysis *rewrite.Analysis
	// Keep is what the student keeps of the original's channels when the fine-tune begins.
	Keep rewrite.Keep
	// Budget is what every allocation meets: a macs or params ratio of the original's cost.
	Budget Budget
	Inputs map[string]onnx.Shape
	// RoundTo is the width grid (as the search's: Width rounds to it).
	RoundTo int
	// Importance orders the channels a group keeps when it shrinks and regains when it grows
	// (nil: L1Importance), as it ordered them for the search's cut.
	Importance map[rewrite.GroupID][]float64
	// Temperature is T0 of the random push's temperature T = T0·(N−t)/N (0: CONetV2's 5).
	Temperature float64
	// metric replaces the groups' rank measured on the student (nil: the rank), for tests that
	// must see the widths move: a short fine-tune of a small net leaves every EVBMF rank as it was.
	metric func(student *onnx.Model) (map[rewrite.GroupID]float64, error)
}

// AdaptReport is what the adaptive sizing did (the report's distill.adapt).
type AdaptReport struct {
	// Points are the measurements planned and Measured those made (fewer when the fine-tune
	// ended early, by its time limit).
	Points   int `json:"points"`
	Measured int `json:"measured"`
	// Temperature is T0 of the random push.
	Temperature   float64        `json:"temperature"`
	Reallocations []Reallocation `json:"reallocations"`
	// Skipped counts the points whose new widths could not be cut (a Split or Slice would keep
	// none of its part) or brought under the measured budget: the student went on as it was.
	Skipped int `json:"skipped,omitempty"`
	// KeptAfter is how many of the reallocations the kept weights come after: the fine-tune keeps
	// the weights it judged best on the held-back images, which may predate the last ones.
	KeptAfter int `json:"kept_after"`
	// Keep is what the kept student keeps of the original's channels.
	Keep rewrite.Keep `json:"-"`
}

// Reallocation is one change of widths during the fine-tune.
type Reallocation struct {
	Point int     `json:"point"`
	Epoch float64 `json:"epoch"`
	// Groups are the groups whose width changed.
	Groups []WidthChange `json:"groups"`
	// Cost is the new allocation's budgeted cost as a share of the original's (measured).
	Cost float64 `json:"cost"`
	// Repair lists the repairs of the new cut that were kept (refit, bn-recalibration,
	// bias-correction; each is undone when it makes the held-back agreement worse).
	Repair []string `json:"repair"`
}

// WidthChange is one group's width before and after a reallocation, and the metric change that
// moved it.
type WidthChange struct {
	ID     rewrite.GroupID `json:"id"`
	Before int             `json:"before"`
	After  int             `json:"after"`
	// Delta is the group's rank change with momentum; Pushed says the random push moved it.
	Delta  float64 `json:"delta"`
	Pushed bool    `json:"pushed,omitempty"`
}

// adaptMomentum weighs the previous change of a group's metric in the current one:
// Δ_t = (m_t − m_{t−1}) + adaptMomentum·Δ_{t−1}.
const adaptMomentum = 0.5

// adaptTemperature is CONetV2's starting temperature T0.
const adaptTemperature = 5.0

// maxAdaptPoints bounds the measurements of a long fine-tune: each measures every layer's metrics.
const maxAdaptPoints = 16

// adaptPoints is how many times a fine-tune of the given epochs is measured: at the end of every
// epoch but the last, or at three evenly spaced points when there are fewer than four epochs.
func adaptPoints(epochs float64) int {
	return min(maxAdaptPoints, max(3, int(math.Ceil(epochs))-1))
}

// adapter resizes the student at the fine-tune's adaptation points by CONetV2's rule, under the
// same budget:
//
//   - each prunable group's metric m is its rank (GroupScores on the student's current weights,
//     the metric the search's default guide uses), and Δ its change since the last measurement
//     with momentum;
//   - the group's proposed width is its width times clip(1+Δ, 0.5, 2), plus a random push of one
//     width unit up or down with probability exp(−1/(|Δ|·T)) under the temperature
//     T = T0·(N−t)/N at point t of N, which falls linearly to 0 at the end;
//   - the proposals are projected onto the width grid and the budget (project), and the student
//     is cut again with knowledge-preserving transfer (transferWeights): the channels a group keeps
//     keep their trained weights, those it gains come back from the original, those it loses go;
//   - the cut is repaired as a fresh one is, on the layers it touched (repair): the layers that
//     read a changed group are refit by least squares, and BN recalibrated (or biases corrected
//     where BN was folded), each step kept only when it does not make the held-back agreement
//     worse. Without the refit the weights a gained channel brings back from the original add to
//     what the trained channels beside it already carry: on resnet8 a group grown from 17 to 57
//     channels fell to 13% agreement before repair, 66% after bias correction alone.
type adapter struct {
	opt     AdaptOptions
	teacher *onnx.Model
	groups  []*rewrite.Group // prunable
	imp     map[rewrite.GroupID][]float64
	rng     *rand.Rand
	trace   *onnx.Model // the original with each constant's positions for values (traceModel)
	cost    func(Widths) float64
	target  float64 // the budgeted cost every allocation meets, predicted
	limit   float64 // the same, measured on the slice
	base    float64 // the original's measured budgeted cost
	keep    rewrite.Keep
	history []rewrite.Keep // the keep of each generation of the student
	prev    map[rewrite.GroupID]float64
	delta   map[rewrite.GroupID]float64
	calib   *dataset.Set // the images the refit reads
	stats   *dataset.Set // the images the statistics repair reads
	val     *dataset.Set
	seed    uint64
	// refitTime bounds each refit (0: none), as the first repair's refit is bounded.
	refitTime time.Duration
	tout      *Outputs
	batch     int
	threads   int
	rep       *AdaptReport
}

// newAdapter prepares the adaptive sizing of student (cut from the teacher with opt.Keep) and
// measures its metrics before training.
func newAdapter(teacher, student *onnx.Model, opt AdaptOptions, seed uint64, calib, stats, val *dataset.Set, refitTime time.Duration, tout *Outputs, batch, threads int) (*adapter, error) {
	a := opt.Analysis
	if a == nil || a.Model != teacher {
		return nil, fmt.Errorf("adaptive sizing needs the analysis of the teacher")
	}
	if opt.Budget.Kind != MACs && opt.Budget.Kind != Params {
		return nil, fmt.Errorf("adaptive sizing needs a macs or params budget, not %q", opt.Budget.Kind)
	}
	if err := opt.Budget.Validate(); err != nil {
		return nil, err
	}
	ad := &adapter{opt: opt, teacher: teacher, groups: a.Prunable(), imp: opt.Importance,
		rng: rand.New(rand.NewPCG(seed, 0xada9)), keep: opt.Keep, history: []rewrite.Keep{opt.Keep},
		delta: map[rewrite.GroupID]float64{}, calib: calib, stats: stats, val: val, seed: seed, refitTime: refitTime, tout: tout, batch: batch, threads: threads,
		rep: &AdaptReport{Temperature: cmp.Or(opt.Temperature, adaptTemperature), Keep: opt.Keep}}
	if ad.imp == nil {
		ad.imp = L1Importance(a)
	}
	// Costs are predicted and measured as the search's are (Anneal: WidthCost over the MACs of
	// each node, then the slice measured).
	nodeMACs, err := onnx.NodeMACsAt(teacher, opt.Inputs)
	if err != nil {
		return nil, err
	}
	wc := a.WidthCost(nodeMACs)
	ad.cost = func(w Widths) float64 {
		macs, params := wc.Eval(w)
		if opt.Budget.Kind == Params {
			return params
		}
		return macs
	}
	full := Widths{}
	for _, g := range ad.groups {
		full[g.ID] = g.Channels
	}
	ad.target = opt.Budget.Ratio * ad.cost(full)
	before, err := Measure(teacher, opt.Inputs)
	if err != nil {
		return nil, err
	}
	ad.base = before.Of(opt.Budget.Kind)
	ad.limit = opt.Budget.Ratio * ad.base
	ad.trace = traceModel(teacher)
	if ad.prev, err = ad.measure(student); err != nil {
		return nil, err
	}
	return ad, nil
}

// measure is each prunable group's rank on m's weights (groups no layer metric touches are left
// out: they never move by the rule).
func (ad *adapter) measure(m *onnx.Model) (map[rewrite.GroupID]float64, error) {
	if ad.opt.metric != nil {
		return ad.opt.metric(m)
	}
	layers, err := LayerMetricsOf(m)
	if err != nil {
		return nil, fmt.Errorf("metrics of the student: %w", err)
	}
	scores := GroupScores(ad.opt.Analysis, layers)
	out := map[rewrite.GroupID]float64{}
	for _, g := range ad.groups {
		if s, ok := scores[g.ID]; ok && s.Sides > 0 {
			out[g.ID] = s.Rank
		}
	}
	return out, nil
}

// widths are the widths a keep gives the prunable groups.
func (ad *adapter) widths(keep rewrite.Keep) Widths {
	w := Widths{}
	for _, g := range ad.groups {
		w[g.ID] = keptWidth(g, keep)
	}
	return w
}

// point is FineTuneOptions.Adapt: it measures the student's metrics at point t of n and
// returns the student cut again when the widths move (nil when they do not).
func (ad *adapter) point(t, n int, epoch float64, student *onnx.Model) (*onnx.Model, error) {
	ad.rep.Points, ad.rep.Measured = n, ad.rep.Measured+1
	now, err := ad.measure(student)
	if err != nil {
		return nil, err
	}
	temp := ad.rep.Temperature * float64(n-t) / float64(n)
	cur := ad.widths(ad.keep)
	proposal, pushed := ad.propose(cur, now, temp)
	ad.prev = now
	next := ad.project(cur, proposal)
	if next == nil || next.key() == cur.key() {
		return nil, nil
	}
	keep, c, err := ad.fit(next, proposal)
	if err != nil {
		return nil, err
	}
	if keep == nil {
		ad.rep.Skipped++
		return nil, nil
	}
	if next.key() == cur.key() {
		return nil, nil
	}
	m, err := transferWeights(ad.opt.Analysis, ad.trace, student, ad.keep, keep)
	if err != nil {
		return nil, err
	}
	re := Reallocation{Point: t, Epoch: epoch, Cost: c.Of(ad.opt.Budget.Kind) / ad.base}
	for _, g := range ad.groups {
		if cur[g.ID] != next[g.ID] {
			re.Groups = append(re.Groups, WidthChange{ID: g.ID, Before: cur[g.ID], After: next[g.ID], Delta: ad.delta[g.ID], Pushed: pushed[g.ID]})
		}
	}
	if re.Repair, err = ad.repair(m, keep, re.Groups); err != nil {
		return nil, err
	}
	// The next change is measured from the new cut, so that it reflects training only.
	if ad.prev, err = ad.measure(m); err != nil {
		return nil, err
	}
	ad.keep = keep
	ad.history = append(ad.history, keep)
	ad.rep.Reallocations = append(ad.rep.Reallocations, re)
	return m, nil
}

// propose applies CONetV2's rule to every prunable group: the width scaled by clip(1+Δ, 0.5, 2)
// of its metric change with momentum, then pushed one unit up or down at random with probability
// exp(−1/(|Δ|·T)). The random draws are made for every group in order, whatever their outcome, so
// the stream depends on the seed and the metrics only.
func (ad *adapter) propose(cur Widths, now map[rewrite.GroupID]float64, temp float64) (map[rewrite.GroupID]float64, map[rewrite.GroupID]bool) {
	proposal := map[rewrite.GroupID]float64{}
	pushed := map[rewrite.GroupID]bool{}
	for _, g := range ad.groups {
		d := 0.0
		if m, ok := now[g.ID]; ok {
			if p, ok := ad.prev[g.ID]; ok {
				d = m - p
			}
		}
		delta := d + adaptMomentum*ad.delta[g.ID]
		ad.delta[g.ID] = delta
		w := float64(cur[g.ID]) * min(2, max(0.5, 1+delta))
		u, up := ad.rng.Float64(), ad.rng.IntN(2) == 1
		if temp > 0 && delta != 0 && u < math.Exp(-1/(math.Abs(delta)*temp)) {
			unit := float64(widthUnit(g, ad.opt.RoundTo))
			if up {
				w += unit
			} else {
				w -= unit
			}
			pushed[g.ID] = true
		}
		proposal[g.ID] = min(float64(g.Channels), max(1, w))
	}
	return proposal, pushed
}

// project puts proposed widths on the width grid and under the budget: each rounded as the
// uniform split rounds (Width); when that costs more than the budget, all scaled down by the
// largest common factor that fits; then grown a unit at a time, the group furthest below its
// proposal first, while the budget allows (fillToward, the uniform split's fill). It returns nil
// when the proposals equal the present widths (nothing moved them).
func (ad *adapter) project(cur Widths, proposal map[rewrite.GroupID]float64) Widths {
	same := true
	for _, g := range ad.groups {
		same = same && proposal[g.ID] == float64(cur[g.ID])
	}
	if same {
		return nil
	}
	a, roundTo := ad.opt.Analysis, ad.opt.RoundTo
	at := func(r float64) Widths {
		w := Widths{}
		for _, g := range ad.groups {
			w[g.ID] = Width(g, r*proposal[g.ID], roundTo)
		}
		return w
	}
	fits := func(w map[rewrite.GroupID]int) bool { return ad.cost(w) <= ad.target }
	w := at(1)
	if !fits(w) {
		lo, hi := 0.0, 1.0
		for i := 0; i < 40; i++ {
			mid := (lo + hi) / 2
			if fits(at(mid)) {
				lo = mid
			} else {
				hi = mid
			}
		}
		if w = at(lo); !fits(w) {
			return nil
		}
	}
	ref := func(g *rewrite.Group) float64 { return proposal[g.ID] }
	if filled := fillToward(a, w, roundTo, ref, fits); filled != nil {
		w = filled
	}
	return w
}

// fit picks the channels of widths w (regroup) and measures the cut: the prediction assumes
// each group keeps the same share of every slice it takes part in, which the channels chosen can
// break a little, so while the measured cost is over the budget a unit is taken from the group
// furthest above its proposal, as the search shaves its result (Anneal). It returns nil when the
// keep cannot be cut or 20 units did not make it fit; w is changed in place.
func (ad *adapter) fit(w Widths, proposal map[rewrite.GroupID]float64) (rewrite.Keep, Costs, error) {
	for round := 0; round < 20; round++ {
		keep := ad.regroup(w)
		m, err := ad.opt.Analysis.Slice(keep)
		if err != nil {
			return nil, Costs{}, nil // a cut the graph cannot take: no reallocation here
		}
		c, err := Measure(m, ad.opt.Inputs)
		if err != nil {
			return nil, Costs{}, err
		}
		if c.Of(ad.opt.Budget.Kind) <= ad.limit {
			return keep, c, nil
		}
		var over *rewrite.Group
		for _, g := range ad.groups {
			if u := widthUnit(g, ad.opt.RoundTo); w[g.ID] > u && (over == nil ||
				float64(w[g.ID])/proposal[g.ID] > float64(w[over.ID])/proposal[over.ID]) {
				over = g
			}
		}
		if over == nil {
			break
		}
		w[over.ID] = max(widthUnit(over, ad.opt.RoundTo), (w[over.ID]-1)/widthUnit(over, ad.opt.RoundTo)*widthUnit(over, ad.opt.RoundTo))
	}
	return nil, Costs{}, nil
}

// regroup picks the channels each group keeps at the new widths: a group that shrinks keeps the
// most important of the channels it has, a group that grows keeps all of them and regains the
// most important of the others (importance as the search's cut ordered them).
func (ad *adapter) regroup(w Widths) rewrite.Keep {
	keep := rewrite.Keep{}
	for _, g := range ad.groups {
		if w[g.ID] >= g.Channels {
			continue
		}
		imp := ad.imp[g.ID]
		lo, hi := slices.Min(imp), slices.Max(imp)
		// Present channels rank above every other, in their own order of importance.
		lift := hi - lo + 1
		scores := slices.Clone(imp)
		has, ok := ad.keep[g.ID]
		for _, c := range has {
			scores[c] += lift
		}
		if !ok { // the group keeps every channel now
			for c := range scores {
				scores[c] += lift
			}
		}
		keep[g.ID] = TopK(scores, w[g.ID], g)
	}
	return keep
}

// repair repairs a new cut m in place as a fresh cut is repaired (distillAgainst), on the layers
// the reallocation touched: the layers that read a group whose width changed are refit by least
// squares to the original's outputs (the weights a gained channel brings back from the original
// were made for the original's other channels, not for the trained ones beside them), and the
// statistics are repaired (BN recalibration where BN is kept, bias correction against the teacher
// where it was folded), in the order distillAgainst runs them. Each step is undone when it makes
// the held-back agreement worse. It returns the steps kept.
func (ad *adapter) repair(m *onnx.Model, keep rewrite.Keep, changed []WidthChange) ([]string, error) {
	a := ad.opt.Analysis
	corr, err := a.Correspond(keep)
	if err != nil {
		return nil, err
	}
	// Only the consumers of the groups that changed are refit (Refit refits the nodes whose
	// correspondence has inputs listed; a group grown to full width lists them all).
	touched := map[string]rewrite.Correspondence{}
	for _, c := range changed {
		for _, name := range a.Groups[c.ID].Consumers {
			if _, ok := corr[name]; ok {
				touched[name] = corr[name]
			}
		}
	}
	for name, c := range touched {
		if c.In == nil {
			for _, n := range m.Graph.Nodes {
				if n.Label() == name && len(n.Inputs) > 1 {
					if w, ok := m.Graph.Inits[n.Inputs[1]]; ok && len(w.Dims) > 1 {
						c.In = make([]int, w.Dims[1])
						for i := range c.In {
							c.In[i] = i
						}
					}
				}
			}
			touched[name] = c
		}
	}
	eval := DistillOptions{Batch: 256, Threads: ad.threads}
	cur, err := evalStudent(m, ad.val, ad.tout, eval)
	if err != nil {
		return nil, err
	}
	kept := []string{}
	run := func(name string, f func(trial *onnx.Model) (int, error)) error {
		trial := m.Clone()
		n, err := f(trial)
		if err != nil {
			return fmt.Errorf("%s after a reallocation: %w", name, err)
		}
		if n == 0 {
			return nil
		}
		ag, err := evalStudent(trial, ad.val, ad.tout, eval)
		if err != nil {
			return err
		}
		if better(ag, cur) {
			*m.Graph = *trial.Graph
			cur = ag
			kept = append(kept, name)
		}
		return nil
	}
	refit := func() error {
		return run("refit", func(trial *onnx.Model) (int, error) {
			return Refit(ad.teacher, trial, touched, ad.calib, RefitOptions{Batch: ad.batch, Threads: ad.threads, Seed: ad.seed, MaxTime: ad.refitTime})
		})
	}
	if HasBatchNorm(m) {
		if err := refit(); err != nil {
			return nil, err
		}
		err = run("bn-recalibration", func(trial *onnx.Model) (int, error) { return RecalibrateBN(trial, ad.stats, ad.batch, ad.threads) })
	} else {
		err = run("bias-correction", func(trial *onnx.Model) (int, error) {
			return CorrectBias(ad.teacher, trial, corr, ad.stats, ad.batch, ad.threads)
		})
		if err == nil {
			err = refit()
		}
	}
	return kept, err
}

// report is the record, given how many reallocations the kept weights come after.
func (ad *adapter) report(generation int) *AdaptReport {
	r := ad.rep
	r.KeptAfter = generation
	r.Keep = ad.history[generation]
	if r.Reallocations == nil {
		r.Reallocations = []Reallocation{}
	}
	return r
}

// traceModel is a copy of m whose floating-point constants hold, instead of their values, each
// value's position in its constant (the position's bits as a float32's). Cut by SliceWeights, it
// says where in the original each value of a slice comes from.
func traceModel(m *onnx.Model) *onnx.Model {
	tm := m.Clone()
	for _, t := range tm.Graph.Inits {
		for i := range t.Floats {
			t.Floats[i] = math.Float32frombits(uint32(i))
		}
	}
	return tm
}

// transferWeights cuts the original of a again as keep says, and carries the trained weights of
// student (cut as from says) over: every constant value of the new cut whose position in the
// original the student also holds takes the student's value; the others (the channels a group
// gains, and their weights in the layers that read them) are the original's. The student's
// constants are read node by node and input by input, so the private copies the repairs give
// shared constants follow their node. Constants read by several nodes stay shared when their new
// values agree, and are given a private copy per node otherwise.
func transferWeights(a *rewrite.Analysis, trace, student *onnx.Model, from, keep rewrite.Keep) (*onnx.Model, error) {
	fresh, err := a.Slice(keep)
	if err != nil {
		return nil, err
	}
	oldPos, err := a.SliceWeights(trace, from)
	if err != nil {
		return nil, err
	}
	newPos, err := a.SliceWeights(trace, keep)
	if err != nil {
		return nil, err
	}
	byLabel := func(m *onnx.Model) map[string]*onnx.Node {
		out := map[string]*onnx.Node{}
		for _, n := range m.Graph.Nodes {
			out[n.Label()] = n
		}
		return out
	}
	studentNodes, oldNodes, newNodes := byLabel(student), byLabel(oldPos), byLabel(newPos)
	origInit := map[string]*onnx.Tensor{} // the original's constant each (node, input) reads
	for _, n := range a.Model.Graph.Nodes {
		for i, in := range n.Inputs {
			if t, ok := a.Model.Graph.Inits[in]; ok {
				origInit[fmt.Sprintf("%s\x00%d", n.Label(), i)] = t
			}
		}
	}
	type slot struct {
		n    *onnx.Node
		i    int
		vals []float32
	}
	var slots []slot
	readers := map[string][]int{} // the slots reading each of fresh's constants
	g := fresh.Graph
	for _, n := range g.Nodes {
		label := n.Label()
		sn, on, nn := studentNodes[label], oldNodes[label], newNodes[label]
		if sn == nil || on == nil || nn == nil || len(sn.Inputs) != len(n.Inputs) {
			return nil, fmt.Errorf("weight transfer: the student's node %s does not match a fresh cut's", label)
		}
		for i, in := range n.Inputs {
			t, ok := g.Inits[in]
			if !ok || t.Floats == nil {
				continue
			}
			orig := origInit[fmt.Sprintf("%s\x00%d", label, i)]
			st, sok := student.Graph.Inits[sn.Inputs[i]]
			ot, ook := oldPos.Graph.Inits[on.Inputs[i]]
			nt, nok := newPos.Graph.Inits[nn.Inputs[i]]
			if orig == nil || !sok || !ook || !nok || st.Floats == nil || len(st.Floats) != len(ot.Floats) || len(nt.Floats) != len(t.Floats) {
				return nil, fmt.Errorf("weight transfer: input %d of node %s does not match a fresh cut's", i, label)
			}
			vals := slices.Clone(t.Floats)
			carry(vals, st.Floats, nt.Floats, ot.Floats, len(orig.Floats))
			readers[in] = append(readers[in], len(slots))
			slots = append(slots, slot{n, i, vals})
		}
	}
	names := slices.Sorted(maps.Keys(readers)) // setConst names copies in the order it is called
	for _, name := range names {
		rs := readers[name]
		agree := true
		for _, r := range rs[1:] {
			agree = agree && slices.Equal(slots[r].vals, slots[rs[0]].vals)
		}
		if agree {
			t := g.Inits[name]
			if !slices.Equal(t.Floats, slots[rs[0]].vals) {
				nt := &onnx.Tensor{Name: t.Name, Type: t.Type, Dims: slices.Clone(t.Dims), Floats: slots[rs[0]].vals}
				g.Inits[name] = nt
			}
			continue
		}
		for _, r := range rs {
			s := slots[r]
			t := g.Inits[s.n.Inputs[s.i]]
			setConst(g, s.n, s.i, &onnx.Tensor{Type: t.Type, Dims: slices.Clone(t.Dims), Floats: s.vals})
		}
	}
	return fresh, nil
}

// carry sets vals[k] (the new cut's values) to from[j] (the student's) wherever the new cut's
// value k and the student's value j come from the same position of an original constant of n
// values; to and at hold those positions (traceModel). Slicing keeps positions in ascending order,
// so the two lists are merged in one pass; were they not, a table of n entries maps them.
func carry(vals, from []float32, to, at []float32, n int) {
	pos := func(v float32) uint32 { return math.Float32bits(v) }
	ascending := func(xs []float32) bool {
		for i := 1; i < len(xs); i++ {
			if pos(xs[i]) <= pos(xs[i-1]) {
				return false
			}
		}
		return true
	}
	if ascending(to) && ascending(at) {
		j := 0
		for k, v := range to {
			for j < len(at) && pos(at[j]) < pos(v) {
				j++
			}
			if j < len(at) && pos(at[j]) == pos(v) {
				vals[k] = from[j]
			}
		}
		return
	}
	index := make([]int32, n) // the student's position of each original value, plus one
	for j, v := range at {
		index[pos(v)] = int32(j + 1)
	}
	for k, v := range to {
		if j := index[pos(v)]; j > 0 {
			vals[k] = from[j-1]
		}
	}
}

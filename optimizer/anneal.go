package optimizer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// Widths maps each prunable group to the number of channels it keeps.
type Widths map[rewrite.GroupID]int

// key is a canonical string for caching a candidate's fitness.
func (w Widths) key() string {
	ids := make([]int, 0, len(w))
	for id := range w {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.Itoa(id))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(w[rewrite.GroupID(id)]))
		b.WriteByte(',')
	}
	return b.String()
}

func (w Widths) clone() Widths {
	c := make(Widths, len(w))
	for k, v := range w {
		c[k] = v
	}
	return c
}

// Fitness scores a candidate (higher is better). It may be expensive: the annealer caches it.
type Fitness func(w Widths) (float64, error)

// SearchOptions configures the width search.
type SearchOptions struct {
	Budget  Budget
	Inputs  map[string]onnx.Shape
	RoundTo int
	Seed    uint64
	// Iterations is the number of proposals (0: 4000 for the weight-only fitness, 150 otherwise).
	Iterations int
	// TimeLimit stops the search early (0: none). A search stopped by time depends on the machine's
	// speed, so the same seed may then give other widths; the result says when this happened.
	TimeLimit time.Duration
	// Fitness judges candidates; nil uses the weight-only score (spectral retention).
	Fitness Fitness
	// Importance picks the channels each group keeps at the chosen width; nil uses L1Importance.
	Importance map[rewrite.GroupID][]float64
	// Layers are the CONet layer metrics: they give the group scores that guide proposals and the
	// retention curves of the weight-only fitness. Nil computes them.
	Layers []LayerMetrics
	// CostBase gives each node's cost for a latency budget (ms per node at batch 1); nil for MACs
	// and params budgets.
	CostBase map[*onnx.Node]int64
	// Cost, if set, predicts the budgeted cost of a candidate (a latency budget's predictor, such
	// as a runtime's per-layer table): it replaces WidthCost over CostBase or MACs, and the budget
	// is a ratio of Cost at full width. The result is then not re-measured in MACs or params.
	Cost func(Widths) float64
	// Progress, if set, is called after each proposal.
	Progress func(done, total int, best float64)
	// Context, if set, stops the search with its error when it is cancelled.
	Context context.Context
	// OutputKinds names the kind of graph outputs outright for the data fitness (see
	// ClassifyOutput), by output name.
	OutputKinds map[string]OutputKind
	// Stage, if set, is told when the search moves to its next phase (temperature probes,
	// proposals, finalists); Progress then counts within it.
	Stage func(name, what string)
	// Confirm, if set, re-judges the finalists (its uniform start, then the best candidates the
	// search scored, best first) more carefully than Fitness can afford to; the best of them is
	// the result. Under a TimeLimit the search leaves half of it for them and stops judging when
	// the next one would overrun it (the start and one candidate are always judged).
	// DataFitness.Confirm is one.
	Confirm Fitness
	// Finalists is how many searched candidates Confirm may see besides the start (0: 3; the
	// time a data search plans for its finalists covers that many, see UseData).
	Finalists int
	// Guide biases the proposals (zero: GuideRank). Sensitivity holds the measured drops
	// GuideSensitivity orders groups by (Sensitivities; other guides ignore it).
	Guide       Guide
	Sensitivity map[rewrite.GroupID]float64
	// Random makes the search a baseline: every proposal is accepted, unguided, without judging
	// candidates, so the result is a random allocation under the same budget.
	Random bool
	// Speed, if set, predicts a candidate's latency in the runtime the model is deployed in (any
	// unit: only ratios are used) for a MACs or params budget. Among the allocations that meet
	// the budget the search then keeps to those predicted to run about as much faster as the
	// budget is smaller (see speedLimit), so that half the MACs is about half the time where
	// the runtime's time does not follow MACs.
	Speed func(Widths) float64
	// SpeedCheck, if set with Speed, times two allocations' slim models alternately in that
	// runtime and returns the second's time as a share of the first's: the descent to a faster
	// start (speedDescent) is kept only where it measures faster.
	SpeedCheck func(before, after Widths) (float64, error)
}

// Why a search stopped (SearchResult.Stopped): its proposals were all made, or its time ran out.
const (
	stoppedByIterations = "iterations"
	stoppedByTime       = "time limit"
)

// SearchResult is the annealer's outcome.
type SearchResult struct {
	Slim
	Fitness             float64
	Iterations, Accepts int
	Evaluations         int    // fitness evaluations (cache misses)
	Stopped             string // stoppedByIterations or stoppedByTime
	// Cooled is how far the temperature fell over the proposals, 1 − T_last/T0: 1 when the
	// schedule ran to its end. Under a time limit the schedule runs on whichever of the
	// proposals or the time is spent first, so a search stopped by time still cools; Cooled is
	// lower only when the search stopped otherwise (cancelled, or no proposal ran).
	Cooled       float64
	Target, Base float64
	// Confirmation is set when SearchOptions.Confirm judged the finalists.
	Confirmation *Confirmation
	// SpeedLimit and PredictedSpeed are set under SearchOptions.Speed: the predicted latency
	// ratio (to the full width's) the search kept under, and the result's.
	SpeedLimit, PredictedSpeed float64
	// Descent is set when speedDescent moved the start.
	Descent *SpeedDescent
}

// SpeedDescent records the descent to a faster start under a speed limit: the start's predicted
// latency ratio before and after it, the measured ratio of the two (SearchOptions.SpeedCheck; 0
// when not measured), and whether it was kept.
type SpeedDescent struct {
	From     float64 `json:"from"`
	To       float64 `json:"to"`
	Measured float64 `json:"measured,omitempty"`
	Kept     bool    `json:"kept"`
	// Error is why the check could not time them (the descent is then undone).
	Error string `json:"error,omitempty"`
}

// Confirmation records how the finalists fared under SearchOptions.Confirm.
type Confirmation struct {
	Finalists  int     `json:"finalists"`   // candidates judged, the start included
	Start      float64 `json:"start_score"` // the uniform start's score
	Chosen     float64 `json:"chosen_score"`
	ChoseStart bool    `json:"chose_start"` // no searched candidate beat the start
	Seconds    float64 `json:"seconds"`
}

// annealer holds the search state.
type annealer struct {
	a      *rewrite.Analysis
	opt    SearchOptions
	groups []*rewrite.Group // prunable, by ID
	unit   map[rewrite.GroupID]int
	wc     *rewrite.WidthCost
	target float64
	ret    map[rewrite.GroupID][]float64
	// redundancy is the guide's donor bias per group, 1 for the group it shrinks first (nil:
	// unguided).
	redundancy map[rewrite.GroupID]float64
	rng        *rand.Rand
	cache      map[string]float64
	seen       map[string]Widths // the candidates behind cache's keys
	evals      int
	fitness    Fitness
	base       int64 // the original's measured cost, once computed
	iters      int   // proposals planned
	// speedTarget bounds SearchOptions.Speed's prediction (+Inf: unbounded), and under it no
	// proposal keeps less than floor of the budgeted cost (see speedLimit).
	speedTarget, floor float64
}

// cost predicts the budgeted cost of a candidate.
func (s *annealer) cost(w Widths) float64 {
	if s.opt.Cost != nil {
		return s.opt.Cost(w)
	}
	macs, params := s.wc.Eval(w)
	if s.opt.Budget.Kind == Params {
		return params
	}
	return macs // MACs, or latency when the predictor was built on per-node latency
}

// feasible says whether w meets the budget, and the speed limit if there is one.
func (s *annealer) feasible(w Widths) bool {
	return s.cost(w) <= s.target && (s.opt.Speed == nil || s.opt.Speed(w) <= s.speedTarget)
}

func (s *annealer) fit(w Widths) (float64, error) {
	k := w.key()
	if f, ok := s.cache[k]; ok {
		return f, nil
	}
	f, err := s.fitness(w)
	if err != nil {
		return 0, err
	}
	s.evals++
	s.cache[k] = f
	s.seen[k] = w.clone()
	return f, nil
}

// weightOnly is CONet's weight-only view: the mean spectral energy the kept channels can carry.
func (s *annealer) weightOnly(w Widths) (float64, error) {
	sum := 0.0
	for _, g := range s.groups {
		curve := s.ret[g.ID]
		if len(curve) == 0 {
			continue
		}
		sum += curve[w[g.ID]]
	}
	return sum / float64(len(s.groups)), nil
}

// step returns the widths one unit apart for a group.
func (s *annealer) clampWidth(g *rewrite.Group, v int) int {
	u := s.unit[g.ID]
	if v >= g.Channels {
		return g.Channels
	}
	v = v / u * u
	if v < u {
		v = u
	}
	return v
}

// Anneal searches widths under the budget with simulated annealing: metric-guided proposals move
// channels from redundant (low-rank) groups to the others, worse candidates are accepted with the
// Metropolis rule under a temperature that falls linearly over the run, and the best feasible
// candidate is kept.
func Anneal(a *rewrite.Analysis, opt SearchOptions) (*SearchResult, error) {
	began := time.Now()
	if err := opt.Budget.Validate(); err != nil {
		return nil, err
	}
	s := &annealer{a: a, opt: opt, unit: map[rewrite.GroupID]int{}, cache: map[string]float64{}, seen: map[string]Widths{},
		rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15)), speedTarget: math.Inf(1)}
	for _, g := range a.Prunable() {
		s.groups = append(s.groups, g)
		s.unit[g.ID] = widthUnit(g, opt.RoundTo)
	}
	if len(s.groups) == 0 {
		return nil, fmt.Errorf("no channel group can shrink (all are pinned)")
	}
	base := opt.CostBase
	if base == nil {
		var err error
		base, err = onnx.NodeMACsAt(a.Model, opt.Inputs)
		if err != nil {
			return nil, err
		}
	}
	s.wc = a.WidthCost(base)
	full := Widths{}
	for _, g := range s.groups {
		full[g.ID] = g.Channels
	}
	baseCost := s.cost(full)
	s.target = opt.Budget.Ratio * baseCost
	layers := opt.Layers
	if layers == nil {
		var err error
		if layers, err = LayerMetricsOf(a.Model); err != nil {
			return nil, err
		}
	}
	s.ret = Retention(a, layers)
	guide := opt.Guide
	if guide == "" {
		guide = GuideRank
	}
	if !opt.Random {
		var err error
		if s.redundancy, err = guideRedundancy(guide, a, s.groups, layers, s.ret, opt.Sensitivity); err != nil {
			return nil, err
		}
	}
	s.fitness = opt.Fitness
	if s.fitness == nil {
		s.fitness = s.weightOnly
	}
	iters := opt.Iterations
	if iters <= 0 {
		iters = 4000
		if opt.Fitness != nil {
			iters = 150
		}
	}

	s.iters = iters
	res := &SearchResult{Stopped: stoppedByIterations, Target: s.target, Base: baseCost}
	cur, err := s.uniformStart()
	if err != nil {
		return nil, err
	}
	s.fill(cur)
	if opt.Speed != nil && opt.Cost == nil {
		s.speedLimit(cur, full, res)
		if res.SpeedLimit > 0 {
			if cur, err = s.speedStart(cur); err != nil {
				return nil, err
			}
			s.speedDescent(cur, full, res)
		}
	}
	start := cur.clone()
	curF, err := s.fit(cur)
	if err != nil {
		return nil, err
	}
	best, bestF := cur.clone(), curF
	t0 := 1.0
	if !opt.Random {
		s.stage("probes", fmt.Sprintf("up to %d proposals scored to set the starting temperature", max(2, min(probes, iters/4))))
		if t0, err = s.initialTemperature(cur, curF, began); err != nil {
			return nil, err
		}
	}
	s.stage("proposals", fmt.Sprintf("%d proposals, accepted by simulated annealing", iters))
	limit := opt.TimeLimit
	if opt.Confirm != nil {
		limit /= 2 // the rest is for the finalists
	}
	proposing := time.Now()
	for it := 0; it < iters; it++ {
		if opt.Context != nil && opt.Context.Err() != nil {
			return nil, opt.Context.Err()
		}
		if limit > 0 && time.Since(began) > limit {
			res.Stopped = stoppedByTime
			break
		}
		res.Iterations++
		// CONetV2 lowers its temperature linearly, T = T0·(N−t)/N. Under a time limit t/N is
		// the larger of the share of proposals made and the share of the proposals' time spent,
		// so that a search the clock stops has cooled too (on inception_lrelu a 2-minute search
		// managed a few proposals of 150, all near T0: a random walk judged by KL). The floor
		// keeps the last proposals from dividing by zero while making them plain hill-climbing.
		done := float64(it) / float64(iters)
		if limit > 0 {
			if left := limit - proposing.Sub(began); left > 0 {
				done = max(done, float64(time.Since(proposing))/float64(left))
			}
		}
		done = min(done, 1)
		res.Cooled = done
		temp := t0*(1-done) + 1e-12
		cand := s.propose(cur)
		if cand == nil {
			continue
		}
		if opt.Random {
			cur, best = cand, cand
			res.Accepts++
			continue
		}
		f, err := s.fit(cand)
		if err != nil {
			return nil, err
		}
		if d := f - curF; d >= 0 || s.rng.Float64() < math.Exp(d/temp) {
			cur, curF = cand, f
			res.Accepts++
			if f > bestF {
				best, bestF = cand.clone(), f
			}
		}
		if opt.Progress != nil {
			opt.Progress(it+1, iters, bestF)
		}
	}
	if res.Stopped == stoppedByIterations && res.Iterations > 0 {
		res.Cooled = 1
	}
	s.fill(best)
	if f, err := s.fit(best); err == nil && f >= bestF {
		bestF = f
	}
	if opt.Confirm != nil && !opt.Random {
		s.stage("finalists", "the best candidates judged after the full repair on fresh images")
		t0 := time.Now()
		w, conf, err := s.confirm(start, began)
		if err != nil {
			return nil, fmt.Errorf("judging the search's finalists: %w", err)
		}
		conf.Seconds = time.Since(t0).Seconds()
		res.Confirmation = conf
		best = w
		if bestF, err = s.fit(best); err != nil {
			return nil, err
		}
	}
	imp := opt.Importance
	if imp == nil {
		imp = L1Importance(a)
	}
	// The prediction assumes each group keeps the same share of every slice it takes part in;
	// channels chosen by importance can break that a little (a group split in halves by a Split).
	// The budget is a hard constraint: measure, and take units away until the sliced model meets it.
	var m *onnx.Model
	var keep rewrite.Keep
	var c Costs
	for round := 0; ; round++ {
		keep = KeepWidths(a, imp, best)
		var err error
		if m, err = a.Slice(keep); err != nil {
			return nil, err
		}
		if c, err = Measure(m, opt.Inputs); err != nil {
			return nil, err
		}
		real := float64(c.MACs)
		if opt.Budget.Kind == Params {
			real = float64(c.Params)
		}
		if opt.CostBase != nil || opt.Cost != nil || real <= opt.Budget.Ratio*float64(s.measuredBase(opt)) || round == 20 {
			break
		}
		if !s.shave(best) {
			break
		}
	}
	res.Slim = Slim{Model: m, Keep: keep, Widths: best, Costs: c}
	if res.SpeedLimit > 0 {
		res.PredictedSpeed = opt.Speed(best) / opt.Speed(full)
	}
	res.Fitness, res.Evaluations = bestF, s.evals
	return res, nil
}

// confirm judges the start and then the best-scored distinct candidates (filled up to the
// budget) with SearchOptions.Confirm, within what is left of the time limit, and returns the one
// it rates highest.
func (s *annealer) confirm(start Widths, began time.Time) (Widths, *Confirmation, error) {
	k := s.opt.Finalists
	if k <= 0 {
		k = searchFinalists
	}
	keys := make([]string, 0, len(s.cache))
	for key := range s.cache {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		if fi, fj := s.cache[keys[i]], s.cache[keys[j]]; fi != fj {
			return fi > fj
		}
		return keys[i] < keys[j]
	})
	finalists := []Widths{start}
	taken := map[string]bool{start.key(): true}
	for _, key := range keys {
		if len(finalists) > k {
			break
		}
		w := s.seen[key].clone()
		s.fill(w)
		if kw := w.key(); !taken[kw] && s.feasible(w) {
			taken[kw] = true
			finalists = append(finalists, w)
		}
	}
	conf := &Confirmation{}
	best, bestF := -1, 0.0
	var slowest time.Duration
	for i, w := range finalists {
		if i >= 2 && s.opt.TimeLimit > 0 && time.Since(began)+slowest > s.opt.TimeLimit {
			break
		}
		t0 := time.Now()
		f, err := s.opt.Confirm(w)
		if err != nil {
			return nil, nil, err
		}
		slowest = max(slowest, time.Since(t0))
		conf.Finalists++
		if s.opt.Progress != nil {
			s.opt.Progress(i+1, len(finalists), 0)
		}
		if i == 0 {
			conf.Start = f
		}
		if best < 0 || f > bestF {
			best, bestF = i, f
		}
	}
	conf.Chosen, conf.ChoseStart = bestF, best == 0
	return finalists[best], conf, nil
}

// measuredBase is the original's exact budgeted cost (MACs or params).
func (s *annealer) measuredBase(opt SearchOptions) int64 {
	if s.base == 0 {
		c, err := Measure(s.a.Model, opt.Inputs)
		if err == nil {
			s.base = c.MACs
			if opt.Budget.Kind == Params {
				s.base = c.Params
			}
		}
	}
	return s.base
}

// shave takes one unit from the group whose loss of retention per predicted cost is smallest.
func (s *annealer) shave(w Widths) bool {
	cur := s.cost(w)
	bestRatio, bestID := math.Inf(1), rewrite.GroupID(-1)
	for _, g := range s.groups {
		v := w[g.ID]
		if v <= s.unit[g.ID] {
			continue
		}
		next := s.clampWidth(g, v-s.unit[g.ID])
		w[g.ID] = next
		c := s.cost(w)
		w[g.ID] = v
		saved := cur - c
		if saved <= 0 {
			continue
		}
		curve := s.ret[g.ID]
		loss := 1e-9
		if len(curve) > v {
			loss += curve[v] - curve[next]
		}
		if r := loss / saved; r < bestRatio {
			bestRatio, bestID = r, g.ID
		}
	}
	if bestID < 0 {
		return false
	}
	w[bestID] = s.clampWidth(s.a.Groups[bestID], w[bestID]-s.unit[bestID])
	return true
}

// halfEnergyRank is the share of channels holding half the spectral energy: a rank-like score when
// no layer metric touches a group.
func halfEnergyRank(curve []float64) float64 {
	if len(curve) < 2 {
		return 1
	}
	for w, r := range curve {
		if r >= 0.5 {
			return float64(w) / float64(len(curve)-1)
		}
	}
	return 1
}

// uniformStart keeps the same fraction of every group, the largest the budget allows, rounded as
// the uniform split rounds (Width: to the nearest unit), so that the search starts from the
// baseline it must beat. Rounding down instead starts grouped convolutions a whole block of
// channels short of it (resnext: 16 of 32 where the uniform split keeps 24), which fill then
// spends elsewhere.
func (s *annealer) uniformStart() (Widths, error) {
	at := func(r float64) Widths {
		w := Widths{}
		for _, g := range s.groups {
			w[g.ID] = Width(g, r*float64(g.Channels), s.opt.RoundTo)
		}
		return w
	}
	if s.feasible(at(1)) {
		return at(1), nil
	}
	lo, hi := 0.0, 1.0
	for i := 0; i < 40; i++ {
		mid := (lo + hi) / 2
		if s.feasible(at(mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	w := at(lo)
	if !s.feasible(w) {
		return nil, fmt.Errorf("budget %v cannot be met: with every prunable group at its minimum width the model keeps %.1f%% of its %s (pinned groups hold the rest)",
			s.opt.Budget, 100*s.cost(w)/(s.target/s.opt.Budget.Ratio), s.opt.Budget.Kind)
	}
	return w, nil
}

// fill grows groups one unit at a time, best retention gain per cost first, while the budget
// allows, so the result lands just under it. Under a speed limit a unit's price is the share it
// takes of what is left of each of the two budgets, summed, so that where time is scarcer than
// MACs the groups the runtime runs fast are grown first.
func (s *annealer) fill(w Widths) {
	limited := s.opt.Speed != nil && !math.IsInf(s.speedTarget, 1)
	for {
		cur := s.cost(w)
		var curSpeed float64
		if limited {
			curSpeed = s.opt.Speed(w)
		}
		bestGain, bestID := 0.0, rewrite.GroupID(-1)
		for _, g := range s.groups {
			v := w[g.ID]
			if v >= g.Channels {
				continue
			}
			next := s.clampWidth(g, v+s.unit[g.ID])
			w[g.ID] = next
			c, ok := s.cost(w), s.feasible(w)
			price := c - cur
			if ok && limited {
				price = price/max(s.target-cur, 1e-12) + max(s.opt.Speed(w)-curSpeed, 0)/max(s.speedTarget-curSpeed, 1e-12)
			}
			w[g.ID] = v
			if !ok || c <= cur {
				continue
			}
			curve := s.ret[g.ID]
			gain := 1e-9
			if len(curve) > next {
				gain += curve[next] - curve[v]
			}
			if r := gain / price; r > bestGain {
				bestGain, bestID = r, g.ID
			}
		}
		if bestID < 0 {
			return
		}
		g := s.a.Groups[bestID]
		w[bestID] = s.clampWidth(g, w[bestID]+s.unit[bestID])
	}
}

// pick draws a group with probability proportional to weight.
func (s *annealer) pick(cands []*rewrite.Group, weight func(*rewrite.Group) float64) *rewrite.Group {
	if len(cands) == 0 {
		return nil
	}
	total := 0.0
	for _, g := range cands {
		total += weight(g)
	}
	x := s.rng.Float64() * total
	for _, g := range cands {
		x -= weight(g)
		if x <= 0 {
			return g
		}
	}
	return cands[len(cands)-1]
}

// propose moves channels from a donor group to a receiver. Guided draws (70%) take donors in
// proportion to their redundancy under the guide (by default low rank first, as CONet shrinks
// low-rank layers and grows the others) and receivers in proportion to the rest; the others are
// uniform, the random push of CONetV2.
func (s *annealer) propose(cur Widths) Widths {
	guided := !s.opt.Random && s.rng.Float64() < 0.7 && s.redundancy != nil
	var donors, receivers []*rewrite.Group
	for _, g := range s.groups {
		if cur[g.ID] > s.unit[g.ID] {
			donors = append(donors, g)
		}
		if cur[g.ID] < g.Channels {
			receivers = append(receivers, g)
		}
	}
	uniform := func(*rewrite.Group) float64 { return 1 }
	wDonor, wRecv := uniform, uniform
	if guided {
		wDonor = func(g *rewrite.Group) float64 { return s.redundancy[g.ID] + 0.05 }
		wRecv = func(g *rewrite.Group) float64 { return 1 - s.redundancy[g.ID] + 0.05 }
	}
	d := s.pick(donors, wDonor)
	if d == nil {
		return nil
	}
	cand := cur.clone()
	units := 1 + s.rng.IntN(3)
	cand[d.ID] = s.clampWidth(d, cur[d.ID]-units*s.unit[d.ID])
	var rs []*rewrite.Group
	for _, g := range receivers {
		if g.ID != d.ID {
			rs = append(rs, g)
		}
	}
	if r := s.pick(rs, wRecv); r != nil {
		// Grow the receiver as far as the freed budget allows (cost grows with width: bisect on
		// whole units; the last step may reach the full width, which need not be a multiple).
		u := s.unit[r.ID]
		steps := (r.Channels - cand[r.ID] + u - 1) / u // units until the full width
		widthAt := func(k int) int { return min(r.Channels, cand[r.ID]+k*u) }
		base := cand[r.ID]
		lo, hi := 0, steps
		for lo < hi {
			mid := (lo + hi + 1) / 2
			cand[r.ID] = widthAt(mid)
			if s.feasible(cand) {
				lo = mid
			} else {
				hi = mid - 1
			}
			cand[r.ID] = base
		}
		cand[r.ID] = widthAt(lo)
	}
	if !s.feasible(cand) || s.cost(cand) < s.floor || cand.key() == cur.key() {
		return nil
	}
	return cand
}

// probes is how many scored proposals set the starting temperature.
const probes = 12

// stage tells SearchOptions.Stage, if set.
func (s *annealer) stage(name, what string) {
	if s.opt.Stage != nil {
		s.opt.Stage(name, what)
	}
}

// initialTemperature sets T0 to the median fitness change of a few proposals, so that early on a
// typical worse move is accepted with probability 1/e. Under a time limit the probes stop after an
// eighth of it (at least two are scored): at 224×224 each may cost many seconds, and a quarter
// left inception_lrelu's 2-minute search three proposals after its dozen probes.
func (s *annealer) initialTemperature(cur Widths, curF float64, began time.Time) (float64, error) {
	// At most a quarter of the proposals: a short search should not spend more evaluations
	// setting its temperature than searching.
	want := max(2, min(probes, s.iters/4))
	var ds []float64
	for i := 0; i < 2*want && len(ds) < want; i++ {
		if s.opt.Context != nil && s.opt.Context.Err() != nil {
			return 0, s.opt.Context.Err()
		}
		if len(ds) >= 2 && s.opt.TimeLimit > 0 && time.Since(began) > s.opt.TimeLimit/8 {
			break
		}
		c := s.propose(cur)
		if c == nil {
			continue
		}
		f, err := s.fit(c)
		if err != nil {
			continue
		}
		if d := math.Abs(f - curF); d > 0 {
			ds = append(ds, d)
		}
		if s.opt.Progress != nil {
			s.opt.Progress(len(ds), want, 0)
		}
	}
	if len(ds) == 0 {
		return 1e-3, nil
	}
	sort.Float64s(ds)
	return ds[len(ds)/2], nil
}

// speedSlack is how far under a MACs or params budget (as a share of the original's cost) a
// search under a speed limit may keep: its start is found within it and no proposal goes under
// it, so that keeping to allocations the runtime runs fast does not become a deeper cut than was
// asked.
const speedSlack = 0.02

// speedLimit sets the bound on SearchOptions.Speed's prediction: the lowest predicted latency
// ratio at which the start (speedStart) still keeps the budget to within speedSlack, found by
// bisection between the budget's ratio (time in proportion to the cost, the speed the budget
// asked for) and the ratio start, the budget's filled uniform start, is predicted at. The cost of
// a channel in time is not the same as in MACs (a depthwise conv's channel costs more time per
// MAC than a pointwise one's, and widths off the runtime's blocks cost more), so at the same MACs
// some allocations run faster than others, and the search keeps to those.
func (s *annealer) speedLimit(start, full Widths, res *SearchResult) {
	whole := s.opt.Speed(full)
	if whole <= 0 {
		return
	}
	hi := s.opt.Speed(start) / whole
	lo := s.opt.Budget.Ratio
	// Within speedSlack of the budget, or of what the grid's rounding keeps if that is less.
	enough := min(s.cost(start), s.target-speedSlack*s.cost(full))
	keeps := func(r float64) bool {
		s.speedTarget = r * whole
		w, err := s.speedStart(start)
		return err == nil && s.cost(w) >= enough
	}
	limit := lo // the start is as fast as asked already, or can be
	if hi > lo && !keeps(lo) {
		for i := 0; i < 10; i++ {
			mid := (lo + hi) / 2
			if keeps(mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
		limit = hi
	}
	s.speedTarget, s.floor = limit*whole, enough
	res.SpeedLimit = limit
}

// descentGain is how much faster the descended start must measure than speedStart's to be kept
// (SearchOptions.SpeedCheck): where the table's errors, not the runtime, made it faster, the
// descent costs accuracy for nothing. On mobilenetv2_se at batch 64 the two starts were predicted
// at 0.574 and 0.532 of the original's latency and both measured 0.56–0.58, alternated; the
// descended one's search lost 1.3 points of test accuracy (85.0% against 83.7%) after the
// default repair and fine-tuning.
const descentGain = 0.02

// speedDescent moves the start under a speed limit to a faster allocation of the same cost, and
// tightens the limit to it: while the start is predicted slower than the budget asks, a step of
// width (startStep) is taken from one group, alone or given to another, within the cost's
// bounds, least retention (Retention's curves) lost per predicted time saved first, until no
// such move saves time. speedStart's greedy trim takes from one group at a time and refills by
// another rule, so it stops where an exchange between two groups still saves time. Applied to
// the results of searches from that start (a scratch test), such a descent took efficientnet_b0
// from 0.540 of the original's predicted latency to 0.500 (mobilenet_v2 0.512 to 0.476,
// regnet_y_400mf 0.549 to 0.521), and alternated with the original in ONNX Runtime from 0.577
// to 0.532 of its time (mobilenet_v2 0.550 to 0.517; regnet_y_400mf within the noise; two 30-s
// runs each). Where the table errs the gain is not real, so the descent is kept only where the
// runtime measures the new start faster (SpeedCheck, descentGain); res.Descent records it.
func (s *annealer) speedDescent(w, full Widths, res *SearchResult) {
	whole := s.opt.Speed(full)
	asked := s.opt.Budget.Ratio * whole
	speed, cost := s.opt.Speed(w), s.cost(w)
	start, startSpeed := w.clone(), speed
	minSave := 1e-4 * whole
	retained := func(g *rewrite.Group, width int) float64 {
		if curve := s.ret[g.ID]; width < len(curve) {
			return curve[width]
		}
		return 0
	}
	// The moves' changes are summed to rank the exchanges, then the best few are predicted whole
	// (groups meet in a layer, so two moves' savings do not quite add).
	const checked = 8
	for step := 0; step < 2000 && speed > asked; step++ {
		var downs, ups []unitMove
		for _, g := range s.groups {
			v := w[g.ID]
			for _, to := range []int{s.clampWidth(g, v-s.startStep(g)), min(g.Channels, v+s.startStep(g))} {
				if to == v || (to < v && v <= s.unit[g.ID]) {
					continue
				}
				w[g.ID] = to
				m := unitMove{g, to, s.opt.Speed(w) - speed, s.cost(w) - cost, retained(g, to) - retained(g, v)}
				w[g.ID] = v
				if to < v {
					downs = append(downs, m)
				} else {
					ups = append(ups, m)
				}
			}
		}
		var cands []exchange
		for i := range downs {
			d := &downs[i]
			if c := cost + d.dCost; c >= s.floor && c <= s.target && -d.dS >= minSave {
				cands = append(cands, exchange{d, nil, d.dS, d.dRet})
			}
			for j := range ups {
				u := &ups[j]
				if u.g == d.g {
					continue
				}
				if c := cost + d.dCost + u.dCost; c >= s.floor && c <= s.target && -(d.dS+u.dS) >= minSave {
					cands = append(cands, exchange{d, u, d.dS + u.dS, d.dRet + u.dRet})
				}
			}
		}
		// Least retention lost per time saved first (an exchange that gains retention first of all).
		sort.Slice(cands, func(i, j int) bool {
			a, b := cands[i], cands[j]
			// dRet/dS is the retention lost per time saved (dS is negative, dRet too for a loss).
			if ra, rb := a.dRet/a.dS, b.dRet/b.dS; ra != rb {
				return ra < rb
			}
			return a.dS < b.dS
		})
		best, bestSpeed := -1, 0.0
		for i := 0; i < min(checked, len(cands)); i++ {
			undo := cands[i].apply(w)
			sp, c := s.opt.Speed(w), s.cost(w)
			undo()
			if sp <= speed-minSave && c >= s.floor && c <= s.target {
				best, bestSpeed = i, sp
				break
			}
		}
		if best < 0 {
			break
		}
		cands[best].apply(w)
		speed, cost = bestSpeed, s.cost(w)
	}
	if speed >= startSpeed {
		return
	}
	d := &SpeedDescent{From: startSpeed / whole, To: speed / whole, Kept: true}
	res.Descent = d
	if s.opt.SpeedCheck != nil {
		s.stage("speed check", "the start before and after the descent timed alternately in the runtime")
		r, err := s.opt.SpeedCheck(start, w)
		if err != nil {
			d.Error = err.Error()
		}
		d.Measured = r
		if d.Kept = err == nil && r <= 1-descentGain; !d.Kept {
			for id, v := range start {
				w[id] = v
			}
			return
		}
	}
	s.speedTarget = speed
	res.SpeedLimit = speed / whole
}

// unitMove is one group's width moved a step (startStep), and what that changes in predicted time and cost.
type unitMove struct {
	g               *rewrite.Group
	to              int
	dS, dCost, dRet float64 // predicted time, cost and retention (Retention's curve) gained
}

// exchange is a step taken from one group and, unless up is nil, one given to another.
type exchange struct {
	down, up *unitMove
	dS, dRet float64
}

// apply makes the exchange in w and returns what undoes it.
func (e exchange) apply(w Widths) (undo func()) {
	down, up := w[e.down.g.ID], 0
	w[e.down.g.ID] = e.down.to
	if e.up != nil {
		up = w[e.up.g.ID]
		w[e.up.g.ID] = e.up.to
	}
	return func() {
		w[e.down.g.ID] = down
		if e.up != nil {
			w[e.up.g.ID] = up
		}
	}
}

// startStep is how far speedStart and speedDescent move a group's width at a time: a few per cent
// of it, in whole units. One unit at a time is thousands of steps on a wide net at --round-to 1
// (resnet50's descent took 20 s), and the start needs no finer grain (the search moves single
// units).
func (s *annealer) startStep(g *rewrite.Group) int {
	return max(1, g.Channels/32/s.unit[g.ID]) * s.unit[g.ID]
}

// speedStart is the search's start under a speed limit: from the budget's start (filled), while
// it is predicted slower than the limit, units are taken from the group that saves the most
// predicted time per cost lost, and the budget freed is then filled again (fill prices time too).
func (s *annealer) speedStart(from Widths) (Widths, error) {
	w := from.clone()
	speed := s.opt.Speed(w)
	for speed > s.speedTarget {
		cost := s.cost(w)
		best, bestID, bestWidth, bestSpeed := 0.0, rewrite.GroupID(-1), 0, 0.0
		for _, g := range s.groups {
			v := w[g.ID]
			if v <= s.unit[g.ID] {
				continue
			}
			next := s.clampWidth(g, v-s.startStep(g))
			w[g.ID] = next
			sp, c := s.opt.Speed(w), s.cost(w)
			w[g.ID] = v
			if saved := speed - sp; saved > 0 {
				if r := saved / max(cost-c, 1e-12); r > best {
					best, bestID, bestWidth, bestSpeed = r, g.ID, next, sp
				}
			}
		}
		if bestID < 0 {
			return nil, fmt.Errorf("the predicted latency cannot be brought under the limit")
		}
		w[bestID], speed = bestWidth, bestSpeed
	}
	s.fill(w)
	return w, nil
}

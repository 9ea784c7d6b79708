package optimizer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file keeps accuracy first when Shrink is given no budget: with data, a bracketing search
// (bisection, or false position once both ends' drops are known) on the budget's ratio, each
// trial the single-budget path (prepared.shrink) judged by the repair's held-back figure; without
// data, one conservative cut.

// DefaultMaxDrop is the points of held-back accuracy (estimated from the original's probabilities
// without labels) a slim model found without a budget may lose.
const DefaultMaxDrop = 1.0

// DataFreeCut is the MACs ratio Shrink keeps when it is given neither a budget nor data: the
// largest cut whose worst drop on the six bundled models stayed near a point through the data-free
// path (the contribution search and the mean compensation; models/README.md, `make bench
// ONLY=defaultcut`).
const DataFreeCut = 0.97

// Bisection bounds: the first ratio tried, the most trials, the narrowest interval worth another
// trial, and the least time a trial is given before the search stops for lack of time.
const (
	firstTrialRatio = 0.5
	maxTrials       = 5
	minTrialStep    = 0.02
	minTrialTime    = 10 * time.Second
)

// TargetReport is how Shrink chose the budget when it was given none.
type TargetReport struct {
	// Checked says the drop was measured on held-back images (false: no data, a fixed cut).
	Checked bool `json:"checked"`
	// Why says in one line how the budget was chosen.
	Why     string     `json:"why"`
	Kind    BudgetKind `json:"kind"`
	MaxDrop float64    `json:"max_drop,omitempty"` // points
	// Figure names what the drop is measured in, on the held-back images: FigureAccuracy (with
	// labels), FigureEstimated (a classifier without labels), FigureAgreement (maps, embeddings)
	// or FigureMixed.
	Figure string        `json:"figure,omitempty"`
	Trials []TargetTrial `json:"trials,omitempty"`
	// Ratio is the budget kept (that of the trial returned).
	Ratio float64 `json:"ratio"`
}

// TargetTrial is one budget tried by the accuracy-first search and its held-back figure.
type TargetTrial struct {
	Ratio     float64 `json:"ratio"`      // the budget asked for
	MACsRatio float64 `json:"macs_ratio"` // what the result kept
	Figure    float64 `json:"figure"`     // percent, on the held-back images
	Reference float64 `json:"reference"`  // the original's, percent
	// Margin is the points added to Reference − Figure when the figure is estimated
	// (AccuracyEstimate.Margin: CalibrationAllowance of it and DropMarginZ standard errors for the
	// held-back sample; 0 for a measured figure).
	Margin float64 `json:"margin,omitempty"`
	Drop   float64 `json:"drop"` // points: Reference − Figure + Margin, judged against the maximum
	Within bool    `json:"within"`
	// Top1 is the top-1 agreement with the original on the held-back images, percent (classifiers).
	Top1    float64 `json:"top1_agreement,omitempty"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// The names of the held-back figures a drop is measured in.
const (
	FigureAccuracy  = "accuracy"
	FigureEstimated = "estimated accuracy (from the original's probabilities)"
	FigureAgreement = "agreement"
	FigureMixed     = "estimated accuracy of the classifier outputs and agreement of the others"
)

// heldBack is a slim model's held-back figure against the original's, in percent.
type heldBack struct {
	name              string
	figure, reference float64
	margin            float64 // points added to the drop: calibration allowance and sampling error
	top1              float64 // top-1 agreement (0 without classifier outputs)
}

// drop is the points judged against the maximum drop.
func (h heldBack) drop() float64 { return h.reference - h.figure + h.margin }

// heldBackFigure is the figure the drop is measured in, from the repair's report: accuracy when
// the held-back images have labels; else, averaged over the outputs, a classifier's accuracy
// estimated from the original's probabilities (EstimateAccuracy: the original's mean top
// probability as the reference, the mean probability it gives the student's class as the figure)
// and the agreement figure of other kinds (a map's IoU, an embedding's cosine, against 100%), with
// the classifiers' margins (AccuracyEstimate.Margin: a calibration allowance and DropMarginZ
// standard errors). Top-1 agreement, which
// would demand that 99% of the images keep their class for a drop of 1 point, is reported beside
// it, not judged. ok is false when the repair measured nothing. This is the one place the
// accuracy-first search and checkDrop read the repair's figures.
func heldBackFigure(rep *Report) (h heldBack, ok bool) {
	d := rep.Distill
	if d == nil || len(d.Stages) == 0 {
		return heldBack{}, false
	}
	last := d.Final()
	h.top1 = 100 * last.Top1
	if last.Accuracy != nil && d.Teacher != nil {
		h.name, h.figure, h.reference = FigureAccuracy, 100**last.Accuracy, 100**d.Teacher
		return h, true
	}
	if len(last.Outputs) == 0 { // an agreement recorded without its outputs
		h.name, h.figure, h.reference = FigureAgreement, 100*last.Figure(), 100
		return h, true
	}
	var fig, ref, margin float64
	estimated := 0
	for _, o := range last.Outputs {
		if e := o.Estimated; e != nil {
			fig += e.Student
			ref += e.Original
			margin += e.Margin() // standard errors summed, not in quadrature: the outputs share images
			estimated++
			continue
		}
		fig += o.Figure()
		ref++
	}
	k := float64(len(last.Outputs))
	h.figure, h.reference = 100*fig/k, 100*ref/k
	h.margin = 100 * margin / k
	switch estimated {
	case 0:
		h.name = FigureAgreement
	case len(last.Outputs):
		h.name = FigureEstimated
	default:
		h.name = FigureMixed
	}
	return h, true
}

// DropError says a slim model lost more than Options.MaxDrop on the held-back images; Shrink then
// returns no model.
type DropError struct {
	Budget        Budget
	Figure        string  // what the drop is measured in (FigureEstimated, ...)
	Drop, MaxDrop float64 // points
}

func (e *DropError) Error() string {
	return fmt.Sprintf("%s loses %.2f points of held-back %s, more than the %.2f allowed: nothing written (a larger budget, or none, finds a model within it)",
		e.Budget, e.Drop, e.Figure, e.MaxDrop)
}

// checkDrop is the DropError for res if it lost more than opt.MaxDrop.
func checkDrop(res *Result, opt Options) error {
	h, ok := heldBackFigure(&res.Report)
	if !ok {
		return optionsErrorf("a maximum drop is measured after the repair: the %s repair measures none", opt.Repair)
	}
	if drop := h.drop(); drop > opt.MaxDrop {
		return &DropError{Budget: opt.Budget, Figure: h.name, Drop: drop, MaxDrop: opt.MaxDrop}
	}
	return nil
}

// shrinkForDrop keeps accuracy first. Without data it makes the cut DataFreeCut of the MACs with
// the mean compensation (the synthetic-image repair is judged on synthetic images too, and costs
// minutes), and says the drop was not checked. With data it narrows the ratio of
// opt.Budget.Kind (MACs when unset) between the largest ratio known to lose too much (at first
// none) and the smallest known within opt.MaxDrop (at first the original), by nextRatio, first
// at firstTrialRatio: each trial runs the
// single-budget path on the same groups, split and runtime, bounded by an even share of what is
// left of opt.Time, and the smallest trial within the drop is returned. If none is, the error
// lists every ratio tried and its drop.
func (p *prepared) shrinkForDrop(ctx context.Context, opt Options) (*Result, error) {
	prog := opt.progress()
	kind := cmp.Or(opt.Budget.Kind, MACs)
	if p.calib == nil {
		opt.Budget = Budget{Kind: MACs, Ratio: DataFreeCut}
		if opt.Repair == RepairDistill {
			opt.Repair = RepairCompensate
		}
		prog.Note(fmt.Sprintf("no budget and no data: keeping %.2f of the MACs, a cut the data-free path held within about a point on the bundled models; the drop is not checked", DataFreeCut))
		res, err := p.shrink(ctx, opt)
		if err != nil {
			return nil, err
		}
		res.Report.Target = &TargetReport{Why: "no budget and no data: a conservative cut, accuracy not checked",
			Kind: MACs, Ratio: DataFreeCut}
		return res, nil
	}
	maxDrop := cmp.Or(opt.MaxDrop, DefaultMaxDrop)
	tr := &TargetReport{Checked: true, Kind: kind, MaxDrop: maxDrop}
	var deadline time.Time
	if opt.Time > 0 {
		deadline = time.Now().Add(opt.Time)
	}
	lo, hi := 0.0, 1.0 // lo: the largest ratio known to lose too much; hi: the smallest known within
	loDrop, hiDrop, loKnown := 0.0, 0.0, false
	var best *Result
	lightest := -1 // the trial nearest the original, for the error when none is within
	for i := 0; i < maxTrials; i++ {
		r := nextRatio(lo, loDrop, hi, hiDrop, loKnown, maxDrop)
		if i == 0 {
			r = firstTrialRatio
		}
		if i > 0 && hi-lo < minTrialStep {
			break
		}
		o := opt
		o.Budget = Budget{Kind: kind, Ratio: r}
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left < minTrialTime {
				prog.Note(fmt.Sprintf("stopping the search for a budget: %s left of the time", max(left, 0).Round(time.Second)))
				break
			}
			o.Time = left / time.Duration(maxTrials-i)
		}
		prog.Note(fmt.Sprintf("trial %d: %s, at most %s", i+1, o.Budget, o.Time.Round(time.Second)))
		t0 := time.Now()
		res, err := p.shrink(ctx, o)
		trial := TargetTrial{Ratio: r, Seconds: time.Since(t0).Seconds()}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			var oe *OptionsError
			if errors.As(err, &oe) {
				return nil, err
			}
			trial.Error = err.Error()
			lo, loKnown = r, false
		default:
			h, ok := heldBackFigure(&res.Report)
			if !ok {
				return nil, optionsErrorf("with no budget the drop is measured after the repair: the %s repair measures none", opt.Repair)
			}
			tr.Figure = h.name
			trial.Figure, trial.Reference, trial.Margin, trial.Drop, trial.Top1 = h.figure, h.reference, h.margin, h.drop(), h.top1
			trial.MACsRatio = float64(res.Report.After.MACs) / float64(max(res.Report.Before.MACs, 1))
			trial.Within = trial.Drop <= maxDrop
			if trial.Within {
				hi, hiDrop, best = r, max(trial.Drop, 0), res
			} else {
				lo, loDrop, loKnown = r, trial.Drop, true
			}
		}
		tr.Trials = append(tr.Trials, trial)
		if lightest < 0 || r > tr.Trials[lightest].Ratio {
			lightest = len(tr.Trials) - 1
		}
		prog.Note(describeTrial(trial, tr.Figure, maxDrop))
	}
	if best == nil {
		if lightest < 0 {
			return nil, fmt.Errorf("no budget tried within the time (%s)", opt.Time)
		}
		lightest := tr.Trials[lightest]
		if lightest.Error != "" {
			return nil, fmt.Errorf("no budget found within %.2g points: the lightest tried, %s ≤ %.3g, failed: %s", maxDrop, kind, lightest.Ratio, lightest.Error)
		}
		var tried []string
		for _, t := range tr.Trials {
			tried = append(tried, fmt.Sprintf("%.3g: %.2f", t.Ratio, t.Drop))
		}
		hint := "more time (each trial repairs longer) or a larger maximum drop may find one"
		if sampling := lightest.Margin - CalibrationAllowance*(lightest.Reference-lightest.Figure); sampling > maxDrop/2 {
			hint = fmt.Sprintf("the margin for the few held-back images (%.2f points at %.3g) is much of it: more --data, or a larger maximum drop, may find one", sampling, lightest.Ratio)
		}
		return nil, fmt.Errorf("no %s ratio tried stays within %.2g points of held-back %s (ratio: drop %s); %s",
			kind, maxDrop, tr.Figure, strings.Join(tried, ", "), hint)
	}
	tr.Ratio = hi
	tr.Why = targetWhy(kind, tr.Figure, maxDrop)
	best.Report.Target = tr
	return best, nil
}

// nextRatio is the next ratio to try inside the bracket (lo, hi), lo losing too much (its drop
// loDrop known when loKnown) and hi within (hiDrop; the original's is 0). Where both drops are
// known it aims, by false position, at three quarters of maxDrop: the drop grows steadily as the
// cut deepens, so a deep first trial that fails by far points near the answer, and aiming under
// the limit makes the next trial likely to pass. The ratio stays at least a fifth of the bracket
// from either end, so every trial narrows it; with lo's drop unknown it is the midpoint.
func nextRatio(lo, loDrop, hi, hiDrop float64, loKnown bool, maxDrop float64) float64 {
	w := hi - lo
	r := lo + w/2
	if loKnown && loDrop > hiDrop {
		r = hi - w*(0.75*maxDrop-hiDrop)/(loDrop-hiDrop)
	}
	return min(max(r, lo+w/5), hi-w/5)
}

// targetWhy says in one line how the accuracy-first search chose the budget.
func targetWhy(kind BudgetKind, figure string, maxDrop float64) string {
	why := fmt.Sprintf("no budget: the smallest %s ratio tried whose held-back %s stays within %.2g points of the original's", kind, figure, maxDrop)
	switch figure {
	case FigureEstimated, FigureMixed:
		why += fmt.Sprintf(" (the estimated drop raised by %.0f%% for the original's calibration and by %g standard errors for the held-back sample; top-1 agreement is reported, not judged)",
			100*CalibrationAllowance, DropMarginZ)
	}
	return why
}

// describeTrial is the line a trial's outcome is reported by.
func describeTrial(t TargetTrial, figure string, maxDrop float64) string {
	if t.Error != "" {
		return fmt.Sprintf("ratio %.3g failed: %s", t.Ratio, t.Error)
	}
	verdict := "within"
	if !t.Within {
		verdict = "more than"
	}
	margin, top1 := "", ""
	if t.Margin > 0 {
		margin = fmt.Sprintf(" (%.2f + a margin of %.2f)", t.Reference-t.Figure, t.Margin)
	}
	if t.Top1 > 0 {
		top1 = fmt.Sprintf("; top-1 agreement %.2f%%", t.Top1)
	}
	return fmt.Sprintf("ratio %.3g (MACs %.3f): held-back %s %.2f%% against %.2f%%, a drop of %.2f points%s, %s the %.2g allowed%s",
		t.Ratio, t.MACsRatio, figure, t.Figure, t.Reference, t.Drop, margin, verdict, maxDrop, top1)
}

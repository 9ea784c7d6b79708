package optimizer

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestNextRatio: the next budget tried stays inside the bracket, at least a fifth from either
// end; it is the midpoint while the lower end's drop is unknown, and aims by false position at
// three quarters of the allowed drop once both drops are known.
func TestNextRatio(t *testing.T) {
	cases := []struct {
		name                   string
		lo, loDrop, hi, hiDrop float64
		loKnown                bool
		maxDrop, want          float64
	}{
		{"lower drop unknown: midpoint", 0.5, 0, 1, 0, false, 1, 0.75},
		{"far too much at 0.5: clamped a fifth below the original", 0.5, 7, 1, 0, true, 1, 0.9},
		{"false position inside the bracket", 0.5, 3, 1, 0, true, 1, 0.875},
		{"both ends measured", 0.9, 2, 0.9625, 0.5, true, 1, 0.95},
		{"upper end already near the limit: clamped above the lower", 0.8, 1.2, 0.9, 0.9, true, 1, 0.88},
		{"a drop that shrinks with the cut (noise): midpoint", 0.5, 0.2, 1, 0.5, true, 1, 0.75},
	}
	for _, c := range cases {
		got := nextRatio(c.lo, c.loDrop, c.hi, c.hiDrop, c.loKnown, c.maxDrop)
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: nextRatio = %.4f, want %.4f", c.name, got, c.want)
		}
		if w := c.hi - c.lo; got < c.lo+w/5-1e-12 || got > c.hi-w/5+1e-12 {
			t.Errorf("%s: %.4f outside the inner three fifths of (%g, %g)", c.name, got, c.lo, c.hi)
		}
	}
}

// TestEstimateAccuracy: hand-made outputs of each activation give the original's mean top
// probability, the mean probability it gives the student's class, their difference and its
// standard error over the images.
func TestEstimateAccuracy(t *testing.T) {
	ln := func(v float64) float32 { return float32(math.Log(v)) }
	cases := []struct {
		name             string
		teacher, student []float32
		classes          int
		activation       string
		want             AccuracyEstimate
	}{
		{"same answers: no drop", []float32{2, 0, 0, 1}, []float32{5, 1, -1, 3}, 2, "",
			AccuracyEstimate{Original: (sigmoid(2) + sigmoid(1)) / 2, Student: (sigmoid(2) + sigmoid(1)) / 2}},
		// p = (0.25, 0.75) on both images; the student answers 0 on the first: d = (0.5, 0).
		{"logits softmaxed", []float32{0, ln(3), 0, ln(3)}, []float32{1, 0, 0, 1}, 2, "",
			AccuracyEstimate{Original: 0.75, Student: 0.5, Drop: 0.25, DropSE: 0.25}},
		{"log-probabilities exponentiated", []float32{ln(0.1), ln(0.2), ln(0.7), ln(0.6), ln(0.3), ln(0.1)},
			[]float32{0, 1, 0, 0, 0, 1}, 3, "LogSoftmax",
			// d = (0.7 − 0.2, 0.6 − 0.1): mean 0.5, no spread.
			AccuracyEstimate{Original: 0.65, Student: 0.15, Drop: 0.5}},
		{"probabilities as they are", []float32{0.1, 0.2, 0.7}, []float32{0.5, 0.3, 0.2}, 3, "Softmax",
			AccuracyEstimate{Original: 0.7, Student: 0.1, Drop: 0.6}},
		{"independent sigmoids not renormalised", []float32{0.9, 0.8, 0.2, 0.4}, []float32{0.1, 0.2, 0.3, 0.1}, 2, "Sigmoid",
			// The student answers 1, then 0: d = (0.9 − 0.8, 0.4 − 0.2) = (0.1, 0.2): mean 0.15,
			// sample sd 0.0707, se 0.05.
			AccuracyEstimate{Original: 0.65, Student: 0.5, Drop: 0.15, DropSE: 0.05}},
	}
	for _, c := range cases {
		got := EstimateAccuracy(c.teacher, c.student, c.classes, c.activation)
		if math.Abs(got.Original-c.want.Original) > 1e-6 || math.Abs(got.Student-c.want.Student) > 1e-6 ||
			math.Abs(got.Drop-c.want.Drop) > 1e-6 || math.Abs(got.DropSE-c.want.DropSE) > 1e-6 {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// TestEstimateAgainstLabels draws labels from known class probabilities q and compares the
// estimated drop with the drop those labels measure. The original's logits are log q at a
// temperature: 1 (calibrated: the estimate matches the measured drop), 0.5 (overconfident: it is
// larger, conservative) or 2 (underconfident: it is smaller). The answers are the same in all
// three (a temperature keeps the arg max), so the measured drop is too.
func TestEstimateAgainstLabels(t *testing.T) {
	const n, classes = 40000, 10
	rng := rand.New(rand.NewPCG(1, 2))
	q := make([]float64, n*classes)
	labels := make([]int, n)
	student := make([]float32, n*classes)
	var correctT, correctS float64
	var diffs []float64
	for i := 0; i < n; i++ {
		row := q[i*classes : (i+1)*classes]
		sum := 0.0
		for k := range row {
			row[k] = math.Exp(1.5 * rng.NormFloat64())
			sum += row[k]
		}
		first, second := 0, -1
		for k := range row {
			row[k] /= sum
			if row[k] > row[first] {
				first = k
			}
		}
		for k := range row {
			if k != first && (second < 0 || row[k] > row[second]) {
				second = k
			}
		}
		// The student takes the runner-up on a third of the images.
		ans := first
		if rng.Float64() < 1.0/3 {
			ans = second
		}
		student[i*classes+ans] = 1
		u, y := rng.Float64(), classes-1
		for k, acc := 0, 0.0; k < classes; k++ {
			if acc += row[k]; u < acc {
				y = k
				break
			}
		}
		labels[i] = y
		d := 0.0
		if y == first {
			d++
		}
		if y == ans {
			d--
		}
		correctT += b2f(y == first)
		correctS += b2f(y == ans)
		diffs = append(diffs, d)
	}
	measured := (correctT - correctS) / n
	var v float64
	for _, d := range diffs {
		v += (d - measured) * (d - measured)
	}
	se := math.Sqrt(v / (n - 1) / n) // the measured drop's own sampling error
	cases := []struct {
		name        string
		temperature float64
		// want says how the estimate must sit against the measured drop, in its standard errors.
		want func(est float64) bool
	}{
		{"calibrated", 1, func(est float64) bool { return math.Abs(est-measured) < 4*se }},
		{"overconfident", 0.5, func(est float64) bool { return est > measured+4*se }},
		{"underconfident", 2, func(est float64) bool { return est < measured-4*se }},
	}
	for _, c := range cases {
		teacher := make([]float32, n*classes)
		for i, p := range q {
			teacher[i] = float32(math.Log(p) / c.temperature)
		}
		e := EstimateAccuracy(teacher, student, classes, "")
		t.Logf("%s: estimated drop %.4f ± %.4f, measured %.4f ± %.4f", c.name, e.Drop, e.DropSE, measured, se)
		if !c.want(e.Drop) {
			t.Errorf("%s: estimated drop %.4f against a measured %.4f (±%.4f)", c.name, e.Drop, measured, se)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestHeldBackFigure: with labels the drop is in accuracy; without, a classifier's is the
// estimate plus its margin, and other kinds' agreement figures count against 100%, averaged over
// the outputs; top-1 agreement is carried beside the figure.
func TestHeldBackFigure(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	est := &AccuracyEstimate{Original: 0.95, Student: 0.94, Drop: 0.01, DropSE: 0.002}
	classifier := OutputAgreement{Name: "logits", Kind: KindLogits, Top1: f(0.97), Estimated: est}
	mask := OutputAgreement{Name: "mask", Kind: KindMap, IoU: f(0.9)}
	report := func(teacher *float64, ag Agreement) *Report {
		return &Report{Distill: &DistillReport{Teacher: teacher, Stages: []Stage{{Name: "inherit", Agreement: ag, Kept: true}}}}
	}
	cases := []struct {
		name                   string
		rep                    *Report
		figure                 string
		fig, ref, margin, top1 float64
		drop                   float64
	}{
		{"labels: accuracy", report(f(0.9), Agreement{Top1: 0.97, Accuracy: f(0.88), Outputs: []OutputAgreement{classifier}}),
			FigureAccuracy, 88, 90, 0, 97, 2},
		{"no labels: the estimate and its margin", report(nil, Agreement{Top1: 0.97, Outputs: []OutputAgreement{classifier}}),
			FigureEstimated, 94, 95, 100 * (0.01*CalibrationAllowance + DropMarginZ*0.002), 97, 1 + 100*(0.01*CalibrationAllowance+DropMarginZ*0.002)},
		{"a map: IoU against 100%", report(nil, Agreement{Outputs: []OutputAgreement{mask}}),
			FigureAgreement, 90, 100, 0, 0, 10},
		{"both: averaged over the outputs", report(nil, Agreement{Top1: 0.97, Outputs: []OutputAgreement{classifier, mask}}),
			FigureMixed, 92, 97.5, 50 * (0.01*CalibrationAllowance + DropMarginZ*0.002), 97, 5.5 + 50*(0.01*CalibrationAllowance+DropMarginZ*0.002)},
		{"outputs not recorded: top-1 agreement", report(nil, Agreement{Top1: 0.97}),
			FigureAgreement, 97, 100, 0, 97, 3},
	}
	for _, c := range cases {
		h, ok := heldBackFigure(c.rep)
		if !ok {
			t.Errorf("%s: no figure", c.name)
			continue
		}
		if h.name != c.figure || math.Abs(h.figure-c.fig) > 1e-9 || math.Abs(h.reference-c.ref) > 1e-9 ||
			math.Abs(h.margin-c.margin) > 1e-9 || math.Abs(h.top1-c.top1) > 1e-9 || math.Abs(h.drop()-c.drop) > 1e-9 {
			t.Errorf("%s: %+v (drop %.4f), want %s %.4f of %.4f, margin %.4f, top-1 %.4f, drop %.4f", c.name, h, h.drop(),
				c.figure, c.fig, c.ref, c.margin, c.top1, c.drop)
		}
	}
	if _, ok := heldBackFigure(&Report{}); ok {
		t.Error("a report without a repair gave a figure")
	}
}

// TestCheckDrop: a budget's result is refused when the estimate plus its margin (the calibration
// allowance and the sampling error) exceeds the maximum drop, even where the estimate alone would
// not, and the error names the figure.
func TestCheckDrop(t *testing.T) {
	est := &AccuracyEstimate{Original: 0.95, Student: 0.9405, Drop: 0.0095, DropSE: 0.001}
	one := 0.96
	res := &Result{Report: Report{Distill: &DistillReport{Stages: []Stage{{Name: "refit", Kept: true,
		Agreement: Agreement{Top1: one, Outputs: []OutputAgreement{{Name: "logits", Kind: KindLogits, Top1: &one, Estimated: est}}}}}}}}
	cases := []struct {
		maxDrop float64
		refused bool
	}{
		{0.9, true},  // the estimate alone (0.95 points) loses too much
		{1.2, true},  // the estimate and its sampling error are within, not with the allowance (0.95 + 0.32 + 0.16)
		{1.5, false}, // all within
	}
	for _, c := range cases {
		err := checkDrop(res, Options{Budget: Budget{Kind: MACs, Ratio: 0.5}, MaxDrop: c.maxDrop})
		var de *DropError
		if got := errors.As(err, &de); got != c.refused {
			t.Errorf("max drop %g: error %v, want refused=%v", c.maxDrop, err, c.refused)
			continue
		}
		want := 0.95*(1+CalibrationAllowance) + 100*DropMarginZ*0.001
		if de != nil && (de.Figure != FigureEstimated || math.Abs(de.Drop-want) > 1e-9) {
			t.Errorf("max drop %g: %+v, want the estimated figure and a drop of %.4f", c.maxDrop, de, want)
		}
	}
}

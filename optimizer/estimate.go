package optimizer

import "math"

// This file estimates, without labels, how much accuracy a slim classifier loses against the
// original: the original's own probabilities stand in for the labels. For an image x, the chance
// that a model's answer c is right is taken to be p(c | x), the probability the original gives c
// (softmax at temperature 1 of logits; probabilities as the graph gives them). The original's
// estimated accuracy is then its mean top probability, the student's the mean probability the
// original gives the student's answer, and their difference, per image p(original's class) −
// p(student's class) ≥ 0, is the expected accuracy drop when the original is calibrated. An
// overconfident original (the usual case for a net trained by cross-entropy) puts too much on its
// own answer and too little on the others, so the estimate is then larger than the true drop:
// conservative. An underconfident one (label smoothing, mixup) would make it optimistic.

// DropMarginZ is how many standard errors of the estimated drop are added to it before it is
// judged against a maximum drop: a one-sided 95% upper bound for the drop the held-back images
// were drawn from, so a small held-back set needs a smaller cut to pass.
const DropMarginZ = 1.645

// CalibrationAllowance is the share of the estimated drop added to it before it is judged, for an
// original less confident than it is right: the bundled models (plain cross-entropy, a few
// epochs) are within about a point of calibrated, resnet8 underconfident, and the estimate on
// held-back images fell short of the drop measured on the 10k test set by up to 36% (vgg at 0.3
// of the MACs). A third covers the 12 cases measured (4 models at 0.3, 0.5 and 0.7 of the MACs;
// models/README.md). An overconfident original makes the estimate conservative without it.
const CalibrationAllowance = 1.0 / 3

// AccuracyEstimate is a student's accuracy relative to the original's, estimated from the
// original's probabilities on unlabelled images (fractions, not percent).
type AccuracyEstimate struct {
	// Original is the original's estimated accuracy: its mean top probability.
	Original float64 `json:"original"`
	// Student is the mean probability the original gives the student's top class.
	Student float64 `json:"student"`
	// Drop is Original − Student (never negative: the original's top class has the largest
	// probability); DropSE is its standard error over the images.
	Drop   float64 `json:"drop"`
	DropSE float64 `json:"drop_se"`
}

// Margin is what is added to the estimated drop before it is judged: CalibrationAllowance of it
// and DropMarginZ standard errors.
func (e AccuracyEstimate) Margin() float64 { return CalibrationAllowance*e.Drop + DropMarginZ*e.DropSE }

// EstimateAccuracy compares a student's classifier output with the original's (N × classes
// each, flattened) by the original's probabilities. activation is the op that made the output
// (Output.Activation): "" for logits (softmaxed here), "LogSoftmax" (exponentiated), "Softmax" or
// "Sigmoid" (taken as they are).
func EstimateAccuracy(teacher, student []float32, classes int, activation string) AccuracyEstimate {
	n := len(teacher) / max(classes, 1)
	if n == 0 || len(student) != len(teacher) {
		return AccuracyEstimate{}
	}
	p := make([]float64, classes)
	var sumT, sumS, sumD, sumD2 float64
	for i := 0; i < n; i++ {
		t := teacher[i*classes : (i+1)*classes]
		at := argmax(t)
		as := argmax(student[i*classes : (i+1)*classes])
		switch activation {
		case "":
			softmax(t, p)
		case "LogSoftmax":
			for k, v := range t {
				p[k] = math.Exp(float64(v))
			}
		default:
			for k, v := range t {
				p[k] = float64(v)
			}
		}
		d := p[at] - p[as]
		sumT += p[at]
		sumS += p[as]
		sumD += d
		sumD2 += d * d
	}
	fn := float64(n)
	e := AccuracyEstimate{Original: sumT / fn, Student: sumS / fn, Drop: sumD / fn}
	if n > 1 {
		// The sample variance of the per-image drops, over n for the standard error of their mean.
		v := max(0, (sumD2-fn*e.Drop*e.Drop)/(fn-1))
		e.DropSE = math.Sqrt(v / fn)
	}
	return e
}

// argmax is the index of the largest value (the first of equals).
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

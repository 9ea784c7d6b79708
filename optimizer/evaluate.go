package optimizer

import (
	"fmt"
	"math"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
)

// runBatches runs p, a program with one input, over set in batches of batch images and hands
// each batch's image count and outputs to use.
func runBatches(p *engine.Program, set *dataset.Set, batch int, use func(n int, ys []*engine.Tensor) error) error {
	if len(p.Inputs()) != 1 {
		return fmt.Errorf("the model has %d inputs; chanopt feeds data to models with one", len(p.Inputs()))
	}
	per := set.C * set.H * set.W
	x := &engine.Tensor{}
	for i := 0; i*batch < set.N; i++ {
		imgs := set.Batch(i, batch)
		n := len(imgs) / per
		x.Shape = []int{n, set.C, set.H, set.W}
		x.Data = imgs
		ys, err := p.RunSlice(x)
		if err != nil {
			return err
		}
		if err := use(n, ys); err != nil {
			return err
		}
	}
	return nil
}

// Logits runs a program over a data set in batches and returns its first output for every image
// (N × classes, flattened) and the class count.
func Logits(p *engine.Program, set *dataset.Set, batch int) ([]float32, int, error) {
	var out []float32
	classes := 0
	err := runBatches(p, set, batch, func(n int, ys []*engine.Tensor) error {
		y := ys[0]
		if len(y.Shape) < 2 || y.Shape[0] != n {
			return fmt.Errorf("the model's first output has shape %v, not N×classes", y.Shape)
		}
		classes = len(y.Data) / n
		out = append(out, y.Data...)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, classes, nil
}

// Agreement compares a student's outputs with its teacher's (and with labels when given). For a
// classifier with one output, Top1 and KL are its top-1 agreement and KL; Outputs holds each
// output's kind and the figures that fit it.
type Agreement struct {
	// Top1 is the share of images where both pick the same class, averaged over the classifier
	// outputs (left out when there are none).
	Top1 float64 `json:"top1_agreement,omitempty"`
	// KL is the mean KL(teacher ‖ student) of a classifier's softmax outputs; with other kinds, the
	// sum over outputs of their divergences (see OutputAgreement).
	KL       float64           `json:"kl"`
	Accuracy *float64          `json:"accuracy,omitempty"` // student accuracy, when labels are given
	Teacher  *float64          `json:"teacher_accuracy,omitempty"`
	Images   int               `json:"images"`
	Outputs  []OutputAgreement `json:"outputs,omitempty"`
}

// Figure is the agreement in one number, 1 when perfect: the mean over outputs of their main
// figure (top-1 agreement, IoU, cosine similarity), Top1 when the outputs were not recorded.
func (a Agreement) Figure() float64 {
	if len(a.Outputs) == 0 {
		return a.Top1
	}
	var s float64
	for _, o := range a.Outputs {
		s += o.Figure()
	}
	return s / float64(len(a.Outputs))
}

// Compare computes agreement between teacher and student logits (N × classes each).
func Compare(teacher, student []float32, classes int, labels []int) Agreement {
	n := len(teacher) / classes
	var agree, kl float64
	var correct, tcorrect int
	pt := make([]float64, classes)
	ps := make([]float64, classes)
	for i := 0; i < n; i++ {
		t := teacher[i*classes : (i+1)*classes]
		s := student[i*classes : (i+1)*classes]
		at, as := softmax(t, pt), softmax(s, ps)
		if at == as {
			agree++
		}
		for k := range pt {
			if pt[k] > 0 {
				kl += pt[k] * (math.Log(pt[k]) - math.Log(math.Max(ps[k], 1e-30)))
			}
		}
		if labels != nil {
			if as == labels[i] {
				correct++
			}
			if at == labels[i] {
				tcorrect++
			}
		}
	}
	a := Agreement{Top1: agree / float64(n), KL: kl / float64(n), Images: n}
	if labels != nil {
		acc, tacc := float64(correct)/float64(n), float64(tcorrect)/float64(n)
		a.Accuracy, a.Teacher = &acc, &tacc
	}
	return a
}

// softmax writes the probabilities of logits into p and returns the arg max.
func softmax(logits []float32, p []float64) int {
	best := 0
	mx := math.Inf(-1)
	for i, v := range logits {
		if float64(v) > mx {
			mx, best = float64(v), i
		}
	}
	sum := 0.0
	for i, v := range logits {
		p[i] = math.Exp(float64(v) - mx)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return best
}

package engine

import (
	"fmt"
	"math"
	"slices"
)

// The losses take logits of shape [N, K] (any shape whose last dim is the K classes: every
// other element counts as a row) and return the loss averaged over rows with its gradient with
// respect to the first argument, ready for Trainer.Backward. The *Into forms write the gradient
// into a tensor the caller reuses (no allocation when its storage is large enough).

// KLDiv is the distillation loss KL(softmax(teacher/T) ‖ softmax(student/T))·T², averaged over
// rows, and its gradient with respect to the student logits, T·(softmax(student/T) −
// softmax(teacher/T))/N. The T² factor keeps gradient magnitudes comparable across temperatures
// (Hinton et al. 2015).
func KLDiv(student, teacher *Tensor, temperature float64) (loss float64, grad *Tensor) {
	grad = &Tensor{}
	loss = KLDivInto(grad, student, teacher, temperature)
	return loss, grad
}

// KLDivInto is KLDiv writing the gradient into grad (reshaped, its storage reused).
func KLDivInto(grad, student, teacher *Tensor, temperature float64) float64 {
	rows, k := lossRows(student)
	if !slices.Equal(student.Shape, teacher.Shape) {
		panic(fmt.Sprintf("engine.KLDiv: student %v and teacher %v differ in shape", student.Shape, teacher.Shape))
	}
	if temperature <= 0 {
		temperature = 1
	}
	shapeLike(grad, student)
	inv := 1 / temperature
	var total float64
	for r := 0; r < rows; r++ {
		s, t, g := student.Data[r*k:(r+1)*k], teacher.Data[r*k:(r+1)*k], grad.Data[r*k:(r+1)*k]
		ms, ls := logSumExp(s, inv)
		mt, lt := logSumExp(t, inv)
		var kl float64
		for i := range s {
			lps := float64(s[i])*inv - ms - ls
			lpt := float64(t[i])*inv - mt - lt
			pt := math.Exp(lpt)
			if pt > 0 {
				kl += pt * (lpt - lps)
			}
			g[i] = float32(temperature * (math.Exp(lps) - pt) / float64(rows))
		}
		total += kl
	}
	return total * temperature * temperature / float64(max(rows, 1))
}

// CrossEntropy is the mean of −log softmax(logits)[label] over rows and its gradient,
// (softmax − onehot)/N. labels has one class index per row.
func CrossEntropy(logits *Tensor, labels []int) (float64, *Tensor) {
	grad := &Tensor{}
	loss := CrossEntropyInto(grad, logits, labels)
	return loss, grad
}

// CrossEntropyInto is CrossEntropy writing the gradient into grad.
func CrossEntropyInto(grad, logits *Tensor, labels []int) float64 {
	rows, k := lossRows(logits)
	if len(labels) != rows {
		panic(fmt.Sprintf("engine.CrossEntropy: %d labels for %d rows", len(labels), rows))
	}
	shapeLike(grad, logits)
	var total float64
	for r := 0; r < rows; r++ {
		x, g := logits.Data[r*k:(r+1)*k], grad.Data[r*k:(r+1)*k]
		m, l := logSumExp(x, 1)
		y := labels[r]
		if y < 0 || y >= k {
			panic(fmt.Sprintf("engine.CrossEntropy: label %d out of range [0, %d)", y, k))
		}
		total += m + l - float64(x[y])
		for i, v := range x {
			p := math.Exp(float64(v) - m - l)
			if i == y {
				p--
			}
			g[i] = float32(p / float64(rows))
		}
	}
	return total / float64(max(rows, 1))
}

// MSE is the mean over all elements of (a − b)² and its gradient with respect to a, 2(a − b)/n.
func MSE(a, b *Tensor) (float64, *Tensor) {
	grad := &Tensor{}
	loss := MSEInto(grad, a, b)
	return loss, grad
}

// MSEInto is MSE writing the gradient into grad.
func MSEInto(grad, a, b *Tensor) float64 {
	n := a.Len()
	if b.Len() != n {
		panic(fmt.Sprintf("engine.MSE: shapes %v and %v differ", a.Shape, b.Shape))
	}
	shapeLike(grad, a)
	var total float64
	scale := 2 / float64(max(n, 1))
	for i := 0; i < n; i++ {
		d := float64(a.Data[i]) - float64(b.Data[i])
		total += d * d
		grad.Data[i] = float32(scale * d)
	}
	return total / float64(max(n, 1))
}

// lossRows splits logits into rows of the last dim.
func lossRows(t *Tensor) (rows, k int) {
	if t == nil || t.IsInt() || len(t.Shape) == 0 {
		panic("engine: loss wants float logits of rank ≥ 1")
	}
	k = t.Shape[len(t.Shape)-1]
	if k == 0 {
		return 0, 0
	}
	return t.Len() / k, k
}

// shapeLike gives grad t's shape, reusing its storage when large enough.
func shapeLike(grad, t *Tensor) {
	n := t.Len()
	if cap(grad.Data) < n {
		grad.Data = make([]float32, n)
	}
	grad.Data = grad.Data[:n]
	grad.Ints = nil
	if !slices.Equal(grad.Shape, t.Shape) {
		grad.Shape = append(grad.Shape[:0], t.Shape...)
	}
}

// logSumExp returns m and log Σ exp(x·scale − m) with m the largest x·scale.
func logSumExp(x []float32, scale float64) (m, l float64) {
	m = math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v)*scale)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v)*scale - m)
	}
	return m, math.Log(s)
}

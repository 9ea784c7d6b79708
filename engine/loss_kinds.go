package engine

import (
	"fmt"
	"math"
	"slices"
)

// Losses for outputs that are not class logits: probabilities (the model ends in Softmax,
// LogSoftmax or Sigmoid), dense maps and embeddings. Each is zero when student equals teacher and
// is averaged so that its size does not grow with the output's (per row or per element), which
// lets a model with several outputs sum them.

// probFloor keeps the log of a student probability finite: below it the loss is flat (a clamp),
// so its gradient there is zero, as the clamp's is.
const probFloor = 1e-7

// KLDivProbsInto is KL(teacher ‖ student) between probability vectors along the last dim,
// averaged over rows, writing the gradient with respect to the student probabilities into grad:
// −p_t/p_s/rows (zero where p_s is clamped at probFloor). The probabilities are used as given (not
// softened again by a softmax). With logProbs both tensors hold log-probabilities (a LogSoftmax
// output) and the gradient is with respect to them: −exp(l_t)/rows.
func KLDivProbsInto(grad, student, teacher *Tensor, logProbs bool) float64 {
	rows, k := lossRows(student)
	if !slices.Equal(student.Shape, teacher.Shape) {
		panic(fmt.Sprintf("engine.KLDivProbs: student %v and teacher %v differ in shape", student.Shape, teacher.Shape))
	}
	shapeLike(grad, student)
	inv := 1 / float64(max(rows, 1))
	var total float64
	for i := 0; i < rows*k; i++ {
		s, t := float64(student.Data[i]), float64(teacher.Data[i])
		if logProbs {
			pt := math.Exp(t)
			total += pt * (t - s)
			grad.Data[i] = float32(-pt * inv)
			continue
		}
		if t <= 0 {
			grad.Data[i] = 0
			continue
		}
		if s > probFloor {
			total += t * (math.Log(t) - math.Log(s))
			grad.Data[i] = float32(-t / s * inv)
		} else {
			total += t * (math.Log(t) - math.Log(probFloor))
			grad.Data[i] = 0
		}
	}
	return total * inv
}

// BernoulliKLInto is the mean over all elements of KL(Bern(p_t) ‖ Bern(p_s)), the binary
// cross-entropy against the teacher's probabilities less its entropy (so zero at equality), for
// per-pixel or multi-label Sigmoid outputs. The gradient with respect to p_s is
// (p_s − p_t)/(p_s(1 − p_s))/n, zero where p_s is clamped to [probFloor, 1 − probFloor].
func BernoulliKLInto(grad, student, teacher *Tensor) float64 {
	n := student.Len()
	if !slices.Equal(student.Shape, teacher.Shape) {
		panic(fmt.Sprintf("engine.BernoulliKL: student %v and teacher %v differ in shape", student.Shape, teacher.Shape))
	}
	shapeLike(grad, student)
	inv := 1 / float64(max(n, 1))
	var total float64
	for i := 0; i < n; i++ {
		s, t := float64(student.Data[i]), min(max(float64(teacher.Data[i]), 0), 1)
		clamped := s < probFloor || s > 1-probFloor
		s = min(max(s, probFloor), 1-probFloor)
		total += xlogy(t, t/s) + xlogy(1-t, (1-t)/(1-s))
		if clamped {
			grad.Data[i] = 0
		} else {
			grad.Data[i] = float32((s - t) / (s * (1 - s)) * inv)
		}
	}
	return total * inv
}

// xlogy is x·log(y), 0 when x is 0.
func xlogy(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(y)
}

// CosineDistanceInto is the mean over rows (vectors along the last dim) of 1 − cos(student,
// teacher), for embeddings, writing its gradient with respect to the student into grad:
// −(t/(|s||t|) − (s·t)s/(|s|³|t|))/rows. A zero vector on either side counts as distance 1 with no
// gradient.
func CosineDistanceInto(grad, student, teacher *Tensor) float64 {
	rows, k := lossRows(student)
	if !slices.Equal(student.Shape, teacher.Shape) {
		panic(fmt.Sprintf("engine.CosineDistance: student %v and teacher %v differ in shape", student.Shape, teacher.Shape))
	}
	shapeLike(grad, student)
	inv := 1 / float64(max(rows, 1))
	var total float64
	for r := 0; r < rows; r++ {
		s, t, g := student.Data[r*k:(r+1)*k], teacher.Data[r*k:(r+1)*k], grad.Data[r*k:(r+1)*k]
		var st, ss, tt float64
		for i := range s {
			st += float64(s[i]) * float64(t[i])
			ss += float64(s[i]) * float64(s[i])
			tt += float64(t[i]) * float64(t[i])
		}
		if ss == 0 || tt == 0 {
			total++
			clear(g)
			continue
		}
		ns, nt := math.Sqrt(ss), math.Sqrt(tt)
		total += 1 - st/(ns*nt)
		for i := range s {
			g[i] = float32(-(float64(t[i])/(ns*nt) - st*float64(s[i])/(ss*ns*nt)) * inv)
		}
	}
	return total * inv
}

package engine

import (
	"math"
	"math/rand"
	"testing"
)

// lossFD checks a loss's gradient against central differences in its first argument (step 1e-3
// on float32 logits of magnitude ~1, loss in float64: tolerance 1e-4 absolute + 1e-3 relative).
func lossFD(t *testing.T, name string, x *Tensor, f func(*Tensor) (float64, *Tensor)) {
	t.Helper()
	_, g := f(x)
	g = g.Clone()
	for i := range x.Data {
		v := x.Data[i]
		x.Data[i] = v + 1e-3
		lp, _ := f(x)
		x.Data[i] = v - 1e-3
		lm, _ := f(x)
		x.Data[i] = v
		num := (lp - lm) / 2e-3
		if math.Abs(float64(g.Data[i])-num) > 1e-4+1e-3*math.Abs(num) {
			t.Errorf("%s: grad[%d] = %.6g, finite difference %.6g", name, i, g.Data[i], num)
		}
	}
}

func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	s := randTensor(rng, -3, 3, 4, 5)
	te := randTensor(rng, -3, 3, 4, 5)
	for _, temp := range []float64{1, 2, 4} {
		lossFD(t, "KLDiv", s, func(x *Tensor) (float64, *Tensor) { return KLDiv(x, te, temp) })
	}
	labels := []int{0, 4, 2, 2}
	lossFD(t, "CrossEntropy", s, func(x *Tensor) (float64, *Tensor) { return CrossEntropy(x, labels) })
	lossFD(t, "MSE", s, func(x *Tensor) (float64, *Tensor) { return MSE(x, te) })
}

func TestLossValues(t *testing.T) {
	// KL against an independent float64 computation
	s := NewTensor([]int{2, 3}, []float32{1, 2, 3, 0, -1, 4})
	te := NewTensor([]int{2, 3}, []float32{3, 1, 0, 2, 2, -2})
	temp := 2.0
	var want float64
	for r := 0; r < 2; r++ {
		ps, pt := make([]float64, 3), make([]float64, 3)
		var zs, zt float64
		for i := 0; i < 3; i++ {
			ps[i] = math.Exp(float64(s.Data[r*3+i]) / temp)
			pt[i] = math.Exp(float64(te.Data[r*3+i]) / temp)
			zs += ps[i]
			zt += pt[i]
		}
		for i := 0; i < 3; i++ {
			want += pt[i] / zt * math.Log((pt[i]/zt)/(ps[i]/zs))
		}
	}
	want = want / 2 * temp * temp
	if got, _ := KLDiv(s, te, temp); math.Abs(got-want) > 1e-9 {
		t.Errorf("KLDiv = %.12g, want %.12g", got, want)
	}
	if got, g := KLDiv(s, s, 3); math.Abs(got) > 1e-12 || maxAbs(g.Data) > 1e-7 {
		t.Errorf("KL(x, x) = %g, grad %v; want 0", got, g.Data)
	}
	if got, _ := CrossEntropy(NewTensor([]int{1, 2}, []float32{0, 0}), []int{1}); math.Abs(got-math.Ln2) > 1e-12 {
		t.Errorf("CrossEntropy of even logits = %g, want ln 2", got)
	}
	if got, _ := MSE(NewTensor([]int{2}, []float32{1, 3}), NewTensor([]int{2}, []float32{0, 1})); got != 2.5 {
		t.Errorf("MSE = %g, want 2.5", got)
	}
	// the Into forms reuse the gradient's storage
	g := &Tensor{}
	KLDivInto(g, s, te, 1)
	p := &g.Data[0]
	KLDivInto(g, s, te, 1)
	if &g.Data[0] != p {
		t.Error("KLDivInto reallocated the gradient")
	}
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

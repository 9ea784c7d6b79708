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

// TestOutputKindLossGradients checks the losses for probabilities, maps and embeddings against
// central differences, away from the clamps (where the loss is flat by design).
func TestOutputKindLossGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	softmaxRows := func(x *Tensor, log bool) *Tensor {
		out := x.Clone()
		rows, k := lossRows(x)
		for r := 0; r < rows; r++ {
			m, l := logSumExp(x.Data[r*k:(r+1)*k], 1)
			for i := 0; i < k; i++ {
				v := float64(x.Data[r*k+i]) - m - l
				if !log {
					v = math.Exp(v)
				}
				out.Data[r*k+i] = float32(v)
			}
		}
		return out
	}
	ps := softmaxRows(randTensor(rng, -1, 1, 3, 4), false)
	pt := softmaxRows(randTensor(rng, -2, 2, 3, 4), false)
	ls := softmaxRows(randTensor(rng, -1, 1, 3, 4), true)
	lt := softmaxRows(randTensor(rng, -2, 2, 3, 4), true)
	bs := randTensor(rng, 0.2, 0.8, 2, 1, 3, 3)
	bt := randTensor(rng, 0, 1, 2, 1, 3, 3)
	es := randTensor(rng, -1, 1, 3, 5)
	et := randTensor(rng, -1, 1, 3, 5)
	for _, tc := range []struct {
		name string
		x    *Tensor
		f    func(g, x *Tensor) float64
	}{
		{"KLDivProbs", ps, func(g, x *Tensor) float64 { return KLDivProbsInto(g, x, pt, false) }},
		{"KLDivProbs(log)", ls, func(g, x *Tensor) float64 { return KLDivProbsInto(g, x, lt, true) }},
		{"BernoulliKL", bs, func(g, x *Tensor) float64 { return BernoulliKLInto(g, x, bt) }},
		{"CosineDistance", es, func(g, x *Tensor) float64 { return CosineDistanceInto(g, x, et) }},
	} {
		lossFD(t, tc.name, tc.x, func(x *Tensor) (float64, *Tensor) {
			g := &Tensor{}
			return tc.f(g, x), g
		})
	}
}

func TestOutputKindLossValues(t *testing.T) {
	p := NewTensor([]int{1, 2}, []float32{0.25, 0.75})
	q := NewTensor([]int{1, 2}, []float32{0.5, 0.5})
	g := &Tensor{}
	want := 0.5*math.Log(0.5/0.25) + 0.5*math.Log(0.5/0.75) // KL(q ‖ p)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"KL(q‖p)", KLDivProbsInto(g, p, q, false), want},
		{"KL(p‖p)", KLDivProbsInto(g, p, p, false), 0},
		{"KL of log-probabilities", KLDivProbsInto(g, logOf(p), logOf(q), true), want},
		{"Bernoulli KL at equality", BernoulliKLInto(g, p, p), 0},
		{"Bernoulli KL", BernoulliKLInto(g, NewTensor([]int{1}, []float32{0.25}), NewTensor([]int{1}, []float32{0.5})), want},
		{"cosine of parallel vectors", CosineDistanceInto(g, NewTensor([]int{1, 2}, []float32{1, 2}), NewTensor([]int{1, 2}, []float32{2, 4})), 0},
		{"cosine of orthogonal vectors", CosineDistanceInto(g, NewTensor([]int{1, 2}, []float32{1, 0}), NewTensor([]int{1, 2}, []float32{0, 3})), 1},
	} {
		if math.Abs(tc.got-tc.want) > 1e-6 {
			t.Errorf("%s = %.9g, want %.9g", tc.name, tc.got, tc.want)
		}
	}
}

func logOf(p *Tensor) *Tensor {
	out := p.Clone()
	for i, v := range p.Data {
		out.Data[i] = float32(math.Log(float64(v)))
	}
	return out
}

package engine

import (
	"math"
	"testing"
)

func param(vals []float32, grads ...float32) *Param {
	return &Param{Name: "p", Shape: []int{len(vals)}, Value: vals, Grad: grads}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestOptimSGD(t *testing.T) {
	// plain with weight decay: w − lr·(g + wd·w)
	p := param([]float32{1, -2}, 0.5, 1)
	(&SGD{WeightDecay: 0.1}).Step([]*Param{p}, 0.1)
	if !near(float64(p.Value[0]), 1-0.1*(0.5+0.1)) || !near(float64(p.Value[1]), -2-0.1*(1-0.2)) {
		t.Errorf("plain SGD: %v", p.Value)
	}
	// momentum 0.9, two steps with the same gradient g = 1: v1 = 1, v2 = 1.9
	for _, nesterov := range []bool{false, true} {
		p := param([]float32{0}, 1)
		o := &SGD{Momentum: 0.9, Nesterov: nesterov}
		o.Step([]*Param{p}, 0.1)
		o.Step([]*Param{p}, 0.1)
		want := -0.1*1 - 0.1*1.9 // heavy ball
		if nesterov {
			want = -0.1*(1+0.9*1) - 0.1*(1+0.9*1.9) // g + μ·v
		}
		if !near(float64(p.Value[0]), want) {
			t.Errorf("momentum nesterov=%v: %g, want %g", nesterov, p.Value[0], want)
		}
	}
}

func TestOptimAdam(t *testing.T) {
	// against a float64 transcription of the algorithm, over 3 steps with changing gradients
	grads := [][]float64{{0.5, -1, 0}, {0.1, 2, -0.3}, {-0.4, 0.2, 0.05}}
	for _, c := range []struct {
		wd        float64
		decoupled bool
	}{{0, false}, {0.1, false}, {0.1, true}} {
		p := param([]float32{1, -1, 0.5}, 0, 0, 0)
		o := &Adam{WeightDecay: c.wd, Decoupled: c.decoupled}
		w := []float64{1, -1, 0.5}
		m, v := make([]float64, 3), make([]float64, 3)
		lr, b1, b2, eps := 0.01, 0.9, 0.999, 1e-8
		for s, g := range grads {
			for i := range g {
				p.Grad[i] = float32(g[i])
			}
			o.Step([]*Param{p}, lr)
			for i := range w {
				gi := g[i]
				if !c.decoupled {
					gi += c.wd * w[i]
				} else {
					w[i] *= 1 - lr*c.wd
				}
				m[i] = b1*m[i] + (1-b1)*gi
				v[i] = b2*v[i] + (1-b2)*gi*gi
				mh := m[i] / (1 - math.Pow(b1, float64(s+1)))
				vh := v[i] / (1 - math.Pow(b2, float64(s+1)))
				w[i] -= lr * mh / (math.Sqrt(vh) + eps)
			}
		}
		for i := range w {
			if math.Abs(float64(p.Value[i])-w[i]) > 1e-6 {
				t.Errorf("wd %g decoupled %v: w[%d] = %.8g, want %.8g", c.wd, c.decoupled, i, p.Value[i], w[i])
			}
		}
	}
}

func TestOptimCosine(t *testing.T) {
	if got := Cosine(1, 0, 100, 10); !near(got, 0.1) {
		t.Errorf("first warmup step %g", got)
	}
	if got := Cosine(1, 9, 100, 10); !near(got, 1) {
		t.Errorf("last warmup step %g", got)
	}
	if got := Cosine(1, 10, 100, 10); !near(got, 1) {
		t.Errorf("first decay step %g", got)
	}
	if got := Cosine(2, 99, 100, 10); math.Abs(got) > 1e-12 {
		t.Errorf("last step %g, want 0", got)
	}
	if got := Cosine(2, 10+89/2, 100, 10); math.Abs(got-1) > 0.05 {
		t.Errorf("midway %g, want about half", got)
	}
	prev := math.Inf(1)
	for s := 10; s < 100; s++ {
		lr := Cosine(1, s, 100, 10)
		if lr > prev {
			t.Fatalf("not decreasing at %d", s)
		}
		prev = lr
	}
}

func TestOptimClipGradNorm(t *testing.T) {
	p := param([]float32{0, 0}, 3, 4)
	if n := ClipGradNorm([]*Param{p}, 1); n != 5 {
		t.Errorf("norm %g", n)
	}
	if !near(float64(p.Grad[0]), 0.6) || !near(float64(p.Grad[1]), 0.8) {
		t.Errorf("clipped %v", p.Grad)
	}
}

package engine

import "math"

// Optimizer updates parameters in place from their gradients with learning rate lr.
type Optimizer interface {
	Step(params []*Param, lr float64)
}

// SGD is stochastic gradient descent with momentum (heavy ball, or Nesterov's) and L2 weight
// decay added to the gradient, as torch.optim.SGD (dampening 0).
type SGD struct {
	Momentum    float64
	Nesterov    bool
	WeightDecay float64
	vel         map[*Param][]float32
}

// Step applies one update.
func (o *SGD) Step(params []*Param, lr float64) {
	if o.vel == nil {
		o.vel = map[*Param][]float32{}
	}
	mu, wd := float32(o.Momentum), float32(o.WeightDecay)
	step := float32(lr)
	for _, p := range params {
		var v []float32
		if mu != 0 {
			v = o.vel[p]
			first := v == nil
			if first {
				v = make([]float32, len(p.Value))
				o.vel[p] = v
			}
			for i, w := range p.Value {
				g := p.Grad[i] + wd*w
				if first {
					v[i] = g
				} else {
					v[i] = mu*v[i] + g
				}
				if o.Nesterov {
					g += mu * v[i]
				} else {
					g = v[i]
				}
				p.Value[i] = w - step*g
			}
			continue
		}
		for i, w := range p.Value {
			p.Value[i] = w - step*(p.Grad[i]+wd*w)
		}
	}
}

// Adam is Adam (Kingma & Ba) with bias correction. WeightDecay is added to the gradient (L2), or
// with Decoupled applied directly to the weights as AdamW does (w −= lr·decay·w). Zero Beta1,
// Beta2 and Eps mean 0.9, 0.999 and 1e-8.
type Adam struct {
	Beta1, Beta2, Eps float64
	WeightDecay       float64
	Decoupled         bool
	t                 int
	m, v              map[*Param][]float32
}

// Step applies one update (all parameters share the step count used for bias correction).
func (o *Adam) Step(params []*Param, lr float64) {
	if o.m == nil {
		o.m, o.v = map[*Param][]float32{}, map[*Param][]float32{}
	}
	b1, b2, eps := o.Beta1, o.Beta2, o.Eps
	if b1 == 0 {
		b1 = 0.9
	}
	if b2 == 0 {
		b2 = 0.999
	}
	if eps == 0 {
		eps = 1e-8
	}
	o.t++
	c1 := 1 - math.Pow(b1, float64(o.t))
	c2 := 1 - math.Pow(b2, float64(o.t))
	alpha := float32(lr / c1)
	sc2 := float32(1 / math.Sqrt(c2))
	fb1, fb2, feps := float32(b1), float32(b2), float32(eps)
	wd := float32(o.WeightDecay)
	decay := float32(1)
	if o.Decoupled {
		decay = float32(1 - lr*o.WeightDecay)
		wd = 0
	}
	for _, p := range params {
		m, v := o.m[p], o.v[p]
		if m == nil {
			m, v = make([]float32, len(p.Value)), make([]float32, len(p.Value))
			o.m[p], o.v[p] = m, v
		}
		for i, w := range p.Value {
			g := p.Grad[i] + wd*w
			mi := fb1*m[i] + (1-fb1)*g
			vi := fb2*v[i] + (1-fb2)*g*g
			m[i], v[i] = mi, vi
			d := float32(math.Sqrt(float64(vi)))*sc2 + feps
			p.Value[i] = w*decay - alpha*mi/d
		}
	}
}

// Cosine is the learning rate at step (0-based) of total: linear warmup from base/warmup to base
// over the first warmup steps, then half a cosine from base down to 0 at the last step.
func Cosine(base float64, step, total, warmup int) float64 {
	if step < warmup {
		return base * float64(step+1) / float64(warmup)
	}
	span := total - warmup
	if span <= 1 {
		return base
	}
	p := math.Min(1, float64(step-warmup)/float64(span-1))
	return base * 0.5 * (1 + math.Cos(math.Pi*p))
}

// ClipGradNorm scales all gradients down so that their joint L2 norm is at most maxNorm, and
// returns the norm before clipping.
func ClipGradNorm(params []*Param, maxNorm float64) float64 {
	var s float64
	for _, p := range params {
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(s)
	if maxNorm > 0 && norm > maxNorm {
		k := float32(maxNorm / norm)
		for _, p := range params {
			for i := range p.Grad {
				p.Grad[i] *= k
			}
		}
	}
	return norm
}

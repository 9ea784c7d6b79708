package engine

import (
	"fmt"
	"math"
)

// trainBN is BatchNormalization for training, forward and backward. In eval mode it normalises
// with the running statistics (inputs 3 and 4), which stay frozen; in train mode with the batch
// statistics, and each forward moves the running statistics toward them by the node's momentum
// (running = running·momentum + batch·(1 − momentum), the variance unbiased as in PyTorch).
type trainBN struct {
	train    bool
	eps      float32
	momentum float32
	// run state, per channel: the mean and 1/σ the forward used
	mean, inv []float32
	mul, add  []float32
	n, c, pl  int
	x, y      []float32
	gamma     []float32
	rv, rm    []float32 // running statistics (train mode updates them)
	fwdT      rangeTask
	// backward state
	dy, dx, dg, db, dm, dv []float32
	accX, accG, accB       bool
	accM, accV             bool
	bwdT                   rangeTask
}

func newTrainBN(b *builder, train bool) (*trainBN, error) {
	n := b.n
	if len(n.Inputs) < 5 {
		return nil, fmt.Errorf("wants 5 inputs")
	}
	o := &trainBN{train: train, eps: n.Float("epsilon", 1e-5), momentum: n.Float("momentum", 0.9)}
	o.fwdT.fn = o.forwardChannels
	o.bwdT.fn = o.backwardChannels
	return o, nil
}

func (o *trainBN) infer(in []*Tensor) ([]spec, error) {
	if len(in) < 5 || in[0] == nil || in[0].IsInt() || len(in[0].Shape) < 2 {
		return nil, fmt.Errorf("wants X of rank ≥ 2 and 4 parameters")
	}
	c := in[0].Shape[1]
	for i := 1; i < 5; i++ {
		if in[i] == nil || in[i].IsInt() || in[i].Len() != c {
			return nil, fmt.Errorf("parameter %d must have %d float values", i, c)
		}
	}
	return []spec{{shape: in[0].Shape}, {shape: []int{c}}, {shape: []int{c}}}, nil
}

func (o *trainBN) run(c *ctx, in, out []*Tensor) error {
	x := in[0]
	o.n, o.c, o.pl = x.Shape[0], x.Shape[1], numel(x.Shape[2:])
	if len(o.mean) != o.c {
		o.mean, o.inv = make([]float32, o.c), make([]float32, o.c)
		o.mul, o.add = make([]float32, o.c), make([]float32, o.c)
	}
	o.x, o.y, o.gamma = x.Data, out[0].Data, in[1].Data
	o.rm, o.rv = in[3].Data, in[4].Data
	beta := in[2].Data
	if !o.train {
		for ch := 0; ch < o.c; ch++ {
			inv := float32(1 / math.Sqrt(float64(o.rv[ch])+float64(o.eps)))
			o.mean[ch], o.inv[ch] = o.rm[ch], inv
			o.mul[ch] = o.gamma[ch] * inv
			o.add[ch] = beta[ch] - o.rm[ch]*o.mul[ch]
		}
	} else {
		copy(o.add, beta) // forwardChannels finishes mul and add from the batch statistics
	}
	c.parallelRange(o.c, x.Len()*2, &o.fwdT)
	for j, t := range out[1:] {
		if t != nil && t.Data != nil {
			if j == 0 {
				copy(t.Data, o.rm)
			} else {
				copy(t.Data, o.rv)
			}
		}
	}
	o.x, o.y, o.gamma, o.rm, o.rv = nil, nil, nil, nil, nil
	return nil
}

// forwardChannels normalises channels [lo, hi) (computing their batch statistics in train mode).
func (o *trainBN) forwardChannels(lo, hi int) {
	pl := o.pl
	for ch := lo; ch < hi; ch++ {
		if o.train {
			// Σx and Σx² per plane (float32 SIMD), across planes in float64
			var s, ss float64
			for n := 0; n < o.n; n++ {
				x := o.x[(n*o.c+ch)*pl : (n*o.c+ch+1)*pl]
				s += float64(vsum(x))
				ss += float64(vdot(x, x))
			}
			cnt := float64(o.n * pl)
			mean := s / cnt
			mf := float32(mean)
			ss = max(0, ss-s*mean) // Σ(x − mean)²
			variance := ss / cnt
			inv := 1 / math.Sqrt(variance+float64(o.eps))
			o.mean[ch], o.inv[ch] = mf, float32(inv)
			o.mul[ch] = float32(float64(o.gamma[ch]) * inv)
			o.add[ch] = float32(float64(o.add[ch]) - mean*float64(o.mul[ch]))
			unbiased := variance
			if cnt > 1 {
				unbiased = ss / (cnt - 1)
			}
			m := o.momentum
			o.rm[ch] = o.rm[ch]*m + mf*(1-m)
			o.rv[ch] = o.rv[ch]*m + float32(unbiased)*(1-m)
		}
		mul, add := o.mul[ch], o.add[ch]
		for n := 0; n < o.n; n++ {
			at := (n*o.c + ch) * pl
			vaffine(o.y[at:at+pl], o.x[at:at+pl], nil, mul, 0, add, false)
		}
	}
}

func (o *trainBN) backward(c *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	x := a.in[0]
	if x.Shape[1] != o.c || numel(x.Shape[2:]) != o.pl || x.Shape[0] != o.n {
		return fmt.Errorf("internal: backward for shape %v after a forward of another", x.Shape)
	}
	o.x, o.dy, o.gamma = x.Data, dy.Data, a.in[1].Data
	o.rv = a.in[4].Data
	get := func(i int) ([]float32, bool) {
		if i < len(a.din) && a.din[i] != nil {
			return a.din[i].Data, a.acc[i]
		}
		return nil, false
	}
	o.dx, o.accX = get(0)
	o.dg, o.accG = get(1)
	o.db, o.accB = get(2)
	o.dm, o.accM = get(3)
	o.dv, o.accV = get(4)
	c.parallelRange(o.c, x.Len()*3, &o.bwdT)
	o.x, o.dy, o.gamma, o.rv, o.dx, o.dg, o.db, o.dm, o.dv = nil, nil, nil, nil, nil, nil, nil, nil, nil
	return nil
}

func put(dst []float32, i int, v float32, acc bool) {
	if acc {
		dst[i] += v
	} else {
		dst[i] = v
	}
}

// backwardChannels computes the gradients of channels [lo, hi).
func (o *trainBN) backwardChannels(lo, hi int) {
	pl := o.pl
	for ch := lo; ch < hi; ch++ {
		mean, inv := o.mean[ch], o.inv[ch]
		// Σdy and Σdy·x̂
		var sdy, sdx float64
		for n := 0; n < o.n; n++ {
			at := (n*o.c + ch) * pl
			dy := o.dy[at : at+pl]
			sdy += float64(vsum(dy))
			sdx += float64(vdot(dy, o.x[at:at+pl]))
		}
		sdyx := sdx - float64(mean)*sdy
		sdyx *= float64(inv)
		if o.dg != nil {
			put(o.dg, ch, float32(sdyx), o.accG)
		}
		if o.db != nil {
			put(o.db, ch, float32(sdy), o.accB)
		}
		g := o.gamma[ch]
		if !o.train {
			if o.dm != nil {
				put(o.dm, ch, float32(-sdy)*g*inv, o.accM)
			}
			if o.dv != nil {
				// ∂y/∂var = −γ·(x − mean)/2 · (var + ε)^(−3/2) = −γ·x̂·inv²/2
				put(o.dv, ch, float32(-0.5*sdyx)*g*inv*inv, o.accV)
			}
		} else {
			if o.dm != nil && !o.accM {
				o.dm[ch] = 0
			}
			if o.dv != nil && !o.accV {
				o.dv[ch] = 0
			}
		}
		if o.dx == nil {
			continue
		}
		k := g * inv
		// eval: dx = k·dy; train: dx = k·(dy − Σdy/N − (x − mean)·inv·Σ(dy·x̂)/N)
		var bx, c float32
		if o.train {
			cnt := float64(o.n * pl)
			c1 := float32(sdy / cnt)
			c2 := float32(sdyx/cnt) * inv
			bx = -k * c2
			c = k * (c2*mean - c1)
		}
		for n := 0; n < o.n; n++ {
			at := (n*o.c + ch) * pl
			vaffine(o.dx[at:at+pl], o.dy[at:at+pl], o.x[at:at+pl], k, bx, c, o.accX)
		}
	}
}

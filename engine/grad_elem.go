package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// unaryGrad is the backward of an element-wise activation: dx = dy · f'(x), computed from x or
// from the output y where that is cheaper.
type unaryGrad struct {
	kind               string
	alpha, beta, gamma float32
	lo, hi             float32
	dynClip            bool
	// run state
	x, y, dy, dx []float32
	acc          bool
	rt           rangeTask
}

func newUnaryGrad(n *onnx.Node) (*unaryGrad, error) {
	g := &unaryGrad{kind: n.OpType, lo: negInf, hi: posInf}
	switch n.OpType {
	case "LeakyRelu":
		g.alpha = n.Float("alpha", 0.01)
	case "Clip":
		g.lo, g.hi = n.Float("min", negInf), n.Float("max", posInf)
		g.dynClip = len(n.Inputs) > 1
	case "HardSigmoid":
		g.alpha, g.beta = n.Float("alpha", 0.2), n.Float("beta", 0.5)
	case "Elu", "Celu":
		g.alpha = n.Float("alpha", 1)
	case "Selu":
		g.alpha = n.Float("alpha", 1.67326319217681884765625)
		g.gamma = n.Float("gamma", 1.05070102214813232421875)
	case "Gelu":
		if a := n.String("approximate", "none"); a != "none" {
			return nil, fmt.Errorf("Gelu approximate=%q has no backward", a)
		}
	}
	g.rt.fn = g.apply
	return g, nil
}

func (g *unaryGrad) backward(c *ctx, a *gradArgs) error {
	if a.din[0] == nil || a.dout[0] == nil {
		return nil
	}
	if g.dynClip {
		lo, hi := g.lo, g.hi
		for i, p := range []*float32{&lo, &hi} {
			if i+1 < len(a.in) && a.in[i+1] != nil {
				t := a.in[i+1]
				if t.IsInt() {
					*p = float32(t.Ints[0])
				} else {
					*p = t.Data[0]
				}
			}
		}
		g.lo, g.hi = lo, hi
	}
	g.x, g.y, g.dy, g.dx, g.acc = a.in[0].Data, a.out[0].Data, a.dout[0].Data, a.din[0].Data, a.acc[0]
	n := len(g.dx)
	c.parallelRange(n, n*4, &g.rt)
	g.x, g.y, g.dy, g.dx = nil, nil, nil, nil
	return nil
}

func (g *unaryGrad) apply(lo, hi int) {
	x, y, dy, dx := g.x[lo:hi], g.y[lo:hi], g.dy[lo:hi], g.dx[lo:hi]
	acc := g.acc
	put := func(i int, v float32) {
		if acc {
			dx[i] += v
		} else {
			dx[i] = v
		}
	}
	switch g.kind {
	case "Relu":
		// branch-free: the signs are random, a branch would mispredict half the time
		if acc {
			for i, v := range y {
				dx[i] += math.Float32frombits(math.Float32bits(dy[i]) & positiveMask(v))
			}
		} else {
			for i, v := range y {
				dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & positiveMask(v))
			}
		}
	case "LeakyRelu":
		for i, v := range x {
			if v > 0 {
				put(i, dy[i])
			} else {
				put(i, dy[i]*g.alpha)
			}
		}
	case "Clip":
		// strict at the bounds, as PyTorch's ReLU6/Hardtanh (which export as Clip)
		for i, v := range x {
			if v > g.lo && v < g.hi {
				put(i, dy[i])
			} else {
				put(i, 0)
			}
		}
	case "Sigmoid":
		for i, v := range y {
			put(i, dy[i]*v*(1-v))
		}
	case "HardSigmoid":
		for i, v := range x {
			if t := g.alpha*v + g.beta; t > 0 && t < 1 {
				put(i, dy[i]*g.alpha)
			} else {
				put(i, 0)
			}
		}
	case "HardSwish":
		for i, v := range x {
			switch {
			case v < -3:
				put(i, 0)
			case v > 3:
				put(i, dy[i])
			default:
				put(i, dy[i]*(2*v+3)/6)
			}
		}
	case "Tanh":
		for i, v := range y {
			put(i, dy[i]*(1-v*v))
		}
	case "Softplus":
		for i, v := range x {
			put(i, dy[i]*float32(1/(1+math.Exp(-float64(v)))))
		}
	case "Elu":
		for i, v := range x {
			if v < 0 {
				put(i, dy[i]*(y[i]+g.alpha))
			} else {
				put(i, dy[i])
			}
		}
	case "Selu":
		for i, v := range x {
			if v <= 0 {
				put(i, dy[i]*g.gamma*g.alpha*float32(math.Exp(float64(v))))
			} else {
				put(i, dy[i]*g.gamma)
			}
		}
	case "Celu":
		for i, v := range x {
			if v <= 0 {
				put(i, dy[i]*float32(math.Exp(float64(v/g.alpha))))
			} else {
				put(i, dy[i])
			}
		}
	case "Softsign":
		for i, v := range x {
			d := 1 + float32(math.Abs(float64(v)))
			put(i, dy[i]/(d*d))
		}
	case "Exp":
		for i, v := range y {
			put(i, dy[i]*v)
		}
	case "Log":
		for i, v := range x {
			put(i, dy[i]/v)
		}
	case "Sqrt":
		for i, v := range y {
			put(i, dy[i]*0.5/v)
		}
	case "Abs":
		for i, v := range x {
			switch {
			case v > 0:
				put(i, dy[i])
			case v < 0:
				put(i, -dy[i])
			default:
				put(i, 0)
			}
		}
	case "Neg":
		for i := range x {
			put(i, -dy[i])
		}
	case "Reciprocal":
		for i, v := range y {
			put(i, -dy[i]*v*v)
		}
	case "Gelu":
		for i, v := range x {
			f := float64(v)
			d := 0.5*(1+math.Erf(f/math.Sqrt2)) + f*math.Exp(-f*f/2)/math.Sqrt(2*math.Pi)
			put(i, dy[i]*float32(d))
		}
	case "Mish":
		for i, v := range x {
			f := float64(v)
			sp := math.Log1p(math.Exp(f))
			th := math.Tanh(sp)
			sig := 1 / (1 + math.Exp(-f))
			put(i, dy[i]*float32(th+f*(1-th*th)*sig))
		}
	case "Sin":
		for i, v := range x {
			put(i, dy[i]*float32(math.Cos(float64(v))))
		}
	case "Cos":
		for i, v := range x {
			put(i, -dy[i]*float32(math.Sin(float64(v))))
		}
	}
}

// positiveMask is all ones when v > 0, else zero (−0 and NaN included), without a branch.
func positiveMask(v float32) uint32 {
	b := int32(math.Float32bits(v))
	return uint32((-b)>>31) &^ uint32(b>>31)
}

// preluGrad is PRelu's backward: dx = dy where x > 0, dy·slope elsewhere; dslope sums dy·x where
// x ≤ 0 over the broadcast dims.
type preluGrad struct{}

func (preluGrad) backward(_ *ctx, a *gradArgs) error {
	x, s, dy := a.in[0], a.in[1], a.dout[0]
	if dy == nil {
		return nil
	}
	l, err := makeBcast(dy.Shape, x.Shape, preluSlopeShape(x.Shape, s.Shape))
	if err != nil {
		return err
	}
	dx, ds := a.din[0], a.din[1]
	zeroUnlessAcc(dx, a.acc[0])
	zeroUnlessAcc(ds, a.acc[1])
	for r := 0; r < l.outerCount; r++ {
		oa, ob := l.offsets(r)
		g := dy.Data[r*l.inner : (r+1)*l.inner]
		for j, d := range g {
			ia, ib := oa+j*l.isa, ob+j*l.isb
			v := x.Data[ia]
			if v > 0 {
				if dx != nil {
					dx.Data[ia] += d
				}
				continue
			}
			if dx != nil {
				dx.Data[ia] += d * s.Data[ib]
			}
			if ds != nil {
				ds.Data[ib] += d * v
			}
		}
	}
	return nil
}

// binaryGrad is the backward of Add, Sub, Mul, Div and Pow with numpy broadcasting: each input's
// gradient is summed over the dims it was broadcast along.
type binaryGrad struct {
	kind binKind
	// run state for the same-shape parallel path
	a, b, y, dy, da, db []float32
	accA, accB          bool
	rt                  rangeTask
}

func newBinaryGrad(opType string) *binaryGrad {
	k := map[string]binKind{"Add": binAdd, "Sub": binSub, "Mul": binMul, "Div": binDiv, "Pow": binPow}[opType]
	g := &binaryGrad{kind: k}
	g.rt.fn = g.apply
	return g
}

// partials returns ∂y/∂a and ∂y/∂b at one element.
func (g *binaryGrad) partials(a, b, y float32) (float32, float32) {
	switch g.kind {
	case binAdd:
		return 1, 1
	case binSub:
		return 1, -1
	case binMul:
		return b, a
	case binDiv:
		return 1 / b, -y / b
	default: // Pow
		pa := float32(float64(b) * math.Pow(float64(a), float64(b)-1))
		pb := float32(0)
		if a > 0 {
			pb = y * float32(math.Log(float64(a)))
		}
		return pa, pb
	}
}

func (g *binaryGrad) backward(c *ctx, ga *gradArgs) error {
	dy := ga.dout[0]
	if dy == nil {
		return nil
	}
	A, B, Y := ga.in[0], ga.in[1], ga.out[0]
	dA, dB := ga.din[0], ga.din[1]
	sameA, sameB := slices.Equal(A.Shape, Y.Shape), slices.Equal(B.Shape, Y.Shape)
	values := g.kind == binAdd || g.kind == binSub || sameA && sameB
	if (dA == nil || sameA) && (dB == nil || sameB) && values {
		g.a, g.b, g.y, g.dy = A.Data, B.Data, Y.Data, dy.Data
		g.da, g.db, g.accA, g.accB = nil, nil, ga.acc[0], ga.acc[1]
		if dA != nil {
			g.da = dA.Data
		}
		if dB != nil {
			g.db = dB.Data
		}
		n := len(g.dy)
		c.parallelRange(n, n*2, &g.rt)
		g.a, g.b, g.y, g.dy, g.da, g.db = nil, nil, nil, nil, nil, nil
		return nil
	}
	// broadcasting: accumulate per element into the inputs' offsets
	l, err := makeBcast(Y.Shape, A.Shape, B.Shape)
	if err != nil {
		return err
	}
	zeroUnlessAcc(dA, ga.acc[0])
	zeroUnlessAcc(dB, ga.acc[1])
	for r := 0; r < l.outerCount; r++ {
		oa, ob := l.offsets(r)
		d := dy.Data[r*l.inner : (r+1)*l.inner]
		for j, v := range d {
			ia, ib := oa+j*l.isa, ob+j*l.isb
			pa, pb := g.partials(A.Data[ia], B.Data[ib], Y.Data[r*l.inner+j])
			if dA != nil {
				dA.Data[ia] += v * pa
			}
			if dB != nil {
				dB.Data[ib] += v * pb
			}
		}
	}
	return nil
}

func (g *binaryGrad) apply(lo, hi int) {
	dy := g.dy[lo:hi]
	switch {
	case g.kind == binAdd || g.kind == binSub:
		if g.da != nil {
			addOrSet(g.da[lo:hi], dy, g.accA)
		}
		if g.db != nil {
			db := g.db[lo:hi]
			if g.kind == binAdd {
				addOrSet(db, dy, g.accB)
			} else if g.accB {
				for i, v := range dy {
					db[i] -= v
				}
			} else {
				for i, v := range dy {
					db[i] = -v
				}
			}
		}
	default:
		a, b, y := g.a[lo:hi], g.b[lo:hi], g.y[lo:hi]
		for i, v := range dy {
			pa, pb := g.partials(a[i], b[i], y[i])
			if g.da != nil {
				if g.accA {
					g.da[lo+i] += v * pa
				} else {
					g.da[lo+i] = v * pa
				}
			}
			if g.db != nil {
				if g.accB {
					g.db[lo+i] += v * pb
				} else {
					g.db[lo+i] = v * pb
				}
			}
		}
	}
}

// sumGrad is the backward of Sum and Mean (variadic, broadcasting).
type sumGrad struct{ mean bool }

func (g *sumGrad) backward(_ *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	scale := float32(1)
	if g.mean {
		scale = 1 / float32(len(a.in))
	}
	for i, dx := range a.din {
		if dx == nil {
			continue
		}
		if err := reduceInto(dx, dy, scale, a.acc[i]); err != nil {
			return err
		}
	}
	return nil
}

// reduceInto adds scale·dy summed over broadcast dims into dx (dx's shape broadcasts to dy's).
func reduceInto(dx, dy *Tensor, scale float32, acc bool) error {
	if dx.Len() == dy.Len() {
		if scale == 1 {
			addOrSet(dx.Data, dy.Data, acc)
			return nil
		}
		for i, v := range dy.Data[:len(dx.Data)] {
			if acc {
				dx.Data[i] += scale * v
			} else {
				dx.Data[i] = scale * v
			}
		}
		return nil
	}
	l, err := makeBcast(dy.Shape, dx.Shape, dx.Shape)
	if err != nil {
		return err
	}
	zeroUnlessAcc(dx, acc)
	for r := 0; r < l.outerCount; r++ {
		oa, _ := l.offsets(r)
		d := dy.Data[r*l.inner : (r+1)*l.inner]
		if l.isa == 0 {
			var s float32
			for _, v := range d {
				s += v
			}
			dx.Data[oa] += scale * s
			continue
		}
		dst := dx.Data[oa : oa+len(d)]
		for j, v := range d {
			dst[j] += scale * v
		}
	}
	return nil
}

// extremumGrad is the backward of variadic Max and Min (broadcasting): each output element's
// gradient goes to the first input holding the chosen value.
type extremumGrad struct {
	taken []bool // per output element: an earlier input already took the gradient
}

func (g *extremumGrad) backward(_ *ctx, a *gradArgs) error {
	dy, y := a.dout[0], a.out[0]
	if dy == nil {
		return nil
	}
	n := y.Len()
	if cap(g.taken) < n {
		g.taken = make([]bool, n)
	}
	taken := g.taken[:n]
	clear(taken)
	for i, x := range a.in {
		if x == nil {
			continue
		}
		dx := a.din[i]
		zeroUnlessAcc(dx, a.acc[i])
		l, err := makeBcast(y.Shape, x.Shape, x.Shape)
		if err != nil {
			return err
		}
		for r := 0; r < l.outerCount; r++ {
			oa, _ := l.offsets(r)
			for j := 0; j < l.inner; j++ {
				at := r*l.inner + j
				ix := oa + j*l.isa
				if taken[at] || x.Data[ix] != y.Data[at] {
					continue
				}
				taken[at] = true
				if dx != nil {
					dx.Data[ix] += dy.Data[at]
				}
			}
		}
	}
	return nil
}

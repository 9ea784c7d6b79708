package engine

import (
	"fmt"
	"math"
)

type unaryKind int

const (
	unRelu unaryKind = iota
	unLeakyRelu
	unClip
	unSigmoid
	unHardSigmoid
	unHardSwish
	unTanh
	unElu
	unSelu
	unCelu
	unSoftplus
	unSoftsign
	unExp
	unLog
	unSqrt
	unAbs
	unNeg
	unReciprocal
	unFloor
	unCeil
	unRound
	unErf
	unSign
	unSin
	unCos
	unTan
	unAsin
	unAcos
	unAtan
	unSinh
	unCosh
	unAsinh
	unAcosh
	unAtanh
	unThresholdedRelu
	unShrink
	unNot
	unIsNaN
	unIsInf
	unGelu
	unMish
)

// unaryOp is an element-wise function of one input (activations and math functions).
type unaryOp struct {
	kind        unaryKind
	alpha, beta float32 // LeakyRelu/Elu/Selu/Celu/HardSigmoid/ThresholdedRelu/Shrink parameters
	gamma       float32
	lo, hi      float32 // Clip bounds (from attributes or constant inputs)
	dynClip     bool    // Clip bounds come from run-time inputs 1 and 2
	detectPos   bool    // IsInf
	detectNeg   bool
	x, y        []float32
	rt          rangeTask
}

func newUnary(k unaryKind) *unaryOp {
	o := &unaryOp{kind: k, lo: negInf, hi: posInf}
	o.rt.fn = o.apply
	return o
}

func (o *unaryOp) inPlace() bool { return o.kind != unNot && o.kind != unIsNaN && o.kind != unIsInf }

func (o *unaryOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, fmt.Errorf("missing input")
	}
	x := in[0]
	switch o.kind {
	case unNot:
		if !x.IsInt() {
			return nil, fmt.Errorf("Not wants a bool input")
		}
		return []spec{{shape: x.Shape, isInt: true}}, nil
	case unIsNaN, unIsInf:
		return []spec{{shape: x.Shape, isInt: true}}, nil
	case unAbs, unNeg, unSign, unRelu, unClip:
		return []spec{{shape: x.Shape, isInt: x.IsInt()}}, nil
	}
	if x.IsInt() {
		return nil, fmt.Errorf("wants a float input")
	}
	return floatSpec(x.Shape), nil
}

func (o *unaryOp) run(c *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	lo, hi := o.lo, o.hi
	if o.dynClip {
		for i, p := range []*float32{&lo, &hi} {
			if i+1 < len(in) && in[i+1] != nil {
				t := in[i+1]
				if t.Len() != 1 {
					return fmt.Errorf("Clip bound must be a scalar, got shape %v", t.Shape)
				}
				if t.IsInt() {
					*p = float32(t.Ints[0])
				} else {
					*p = t.Data[0]
				}
			}
		}
	}
	if x.IsInt() || y.IsInt() {
		return o.runInts(x, y, lo, hi)
	}
	o.x, o.y = x.Data, y.Data
	saveLo, saveHi := o.lo, o.hi
	o.lo, o.hi = lo, hi
	c.parallelRange(len(o.y), len(o.y)*o.cost(), &o.rt)
	o.lo, o.hi = saveLo, saveHi
	return nil
}

func (o *unaryOp) cost() int {
	switch o.kind {
	case unRelu, unClip, unLeakyRelu, unNeg, unAbs, unHardSigmoid, unHardSwish:
		return 1
	case unSigmoid, unExp:
		return 4
	}
	return 16
}

func (o *unaryOp) runInts(x, y *Tensor, lo, hi float32) error {
	for i := range y.Ints {
		var v int64
		if x.IsInt() {
			v = x.Ints[i]
		}
		switch o.kind {
		case unNot:
			y.Ints[i] = b2i(v == 0)
		case unIsNaN:
			y.Ints[i] = b2i(x.Data[i] != x.Data[i])
		case unIsInf:
			f := float64(x.Data[i])
			y.Ints[i] = b2i(o.detectPos && math.IsInf(f, 1) || o.detectNeg && math.IsInf(f, -1))
		case unAbs:
			y.Ints[i] = max(v, -v)
		case unNeg:
			y.Ints[i] = -v
		case unSign:
			y.Ints[i] = b2i(v > 0) - b2i(v < 0)
		case unRelu:
			y.Ints[i] = max(v, 0)
		case unClip:
			if float32(v) < lo {
				v = int64(lo)
			}
			if float32(v) > hi {
				v = int64(hi)
			}
			y.Ints[i] = v
		default:
			return fmt.Errorf("no int version")
		}
	}
	return nil
}

func (o *unaryOp) apply(lo, hi int) {
	x, y := o.x[lo:hi], o.y[lo:hi]
	switch o.kind {
	case unRelu:
		for i, v := range x {
			y[i] = max(v, 0)
		}
	case unClip:
		a, b := o.lo, o.hi
		for i, v := range x {
			if v < a {
				v = a
			}
			if v > b {
				v = b
			}
			y[i] = v
		}
	case unLeakyRelu:
		for i, v := range x {
			if v < 0 {
				v *= o.alpha
			}
			y[i] = v
		}
	case unHardSigmoid:
		for i, v := range x {
			y[i] = max(0, min(1, o.alpha*v+o.beta))
		}
	case unHardSwish:
		for i, v := range x {
			y[i] = v * max(0, min(1, v/6+0.5))
		}
	case unNeg:
		for i, v := range x {
			y[i] = -v
		}
	case unAbs:
		for i, v := range x {
			y[i] = float32(math.Abs(float64(v)))
		}
	case unSigmoid:
		expSlice(y, x, true)
	case unExp:
		expSlice(y, x, false)
	default:
		f := o.fn()
		for i, v := range x {
			y[i] = float32(f(float64(v)))
		}
	}
}

func sigmoid(v float64) float64 {
	if v >= 0 {
		return 1 / (1 + math.Exp(-v))
	}
	e := math.Exp(v)
	return e / (1 + e)
}

func (o *unaryOp) fn() func(float64) float64 {
	alpha, beta, gamma := float64(o.alpha), float64(o.beta), float64(o.gamma)
	switch o.kind {
	case unSigmoid:
		return sigmoid
	case unTanh:
		return math.Tanh
	case unElu:
		return func(v float64) float64 {
			if v < 0 {
				return alpha * (math.Exp(v) - 1)
			}
			return v
		}
	case unSelu:
		return func(v float64) float64 {
			if v <= 0 {
				return gamma * (alpha*math.Exp(v) - alpha)
			}
			return gamma * v
		}
	case unCelu:
		return func(v float64) float64 { return math.Max(0, v) + math.Min(0, alpha*(math.Exp(v/alpha)-1)) }
	case unSoftplus:
		return func(v float64) float64 {
			if v > 30 {
				return v
			}
			return math.Log1p(math.Exp(v))
		}
	case unSoftsign:
		return func(v float64) float64 { return v / (1 + math.Abs(v)) }
	case unExp:
		return math.Exp
	case unLog:
		return math.Log
	case unSqrt:
		return math.Sqrt
	case unReciprocal:
		return func(v float64) float64 { return 1 / v }
	case unFloor:
		return math.Floor
	case unCeil:
		return math.Ceil
	case unRound:
		return math.RoundToEven
	case unErf:
		return math.Erf
	case unSign:
		return func(v float64) float64 {
			switch {
			case v > 0:
				return 1
			case v < 0:
				return -1
			}
			return v
		}
	case unSin:
		return math.Sin
	case unCos:
		return math.Cos
	case unTan:
		return math.Tan
	case unAsin:
		return math.Asin
	case unAcos:
		return math.Acos
	case unAtan:
		return math.Atan
	case unSinh:
		return math.Sinh
	case unCosh:
		return math.Cosh
	case unAsinh:
		return math.Asinh
	case unAcosh:
		return math.Acosh
	case unAtanh:
		return math.Atanh
	case unThresholdedRelu:
		return func(v float64) float64 {
			if v > alpha {
				return v
			}
			return 0
		}
	case unShrink: // alpha = bias, beta = lambd
		return func(v float64) float64 {
			switch {
			case v < -beta:
				return v + alpha
			case v > beta:
				return v - alpha
			}
			return 0
		}
	case unGelu:
		return func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }
	case unMish:
		return func(v float64) float64 { return v * math.Tanh(math.Log1p(math.Exp(v))) }
	}
	return func(v float64) float64 { return math.NaN() }
}

// preluOp is PRelu: x where x ≥ 0, slope·x elsewhere, the slope broadcast to x.
type preluOp struct{}

func (o *preluOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil || in[0].IsInt() || in[1].IsInt() {
		return nil, fmt.Errorf("wants 2 float inputs")
	}
	s, err := broadcastShape(in[0].Shape, preluSlopeShape(in[0].Shape, in[1].Shape))
	if err != nil {
		return nil, err
	}
	return floatSpec(s), nil
}

// preluSlopeShape applies the opset < 7 rule: a slope of shape [C] applies to dim 1 of an
// N×C×... input when it does not broadcast from the right.
func preluSlopeShape(x, s []int) []int {
	if len(s) == 1 && len(x) > 2 && s[0] == x[1] && s[0] != x[len(x)-1] {
		out := ones(len(x) - 1)
		out[0] = s[0]
		return out
	}
	return s
}

func (o *preluOp) run(c *ctx, in, out []*Tensor) error {
	x, s, y := in[0], in[1], out[0]
	l, err := makeBcast(y.Shape, x.Shape, preluSlopeShape(x.Shape, s.Shape))
	if err != nil {
		return err
	}
	for r := 0; r < l.outerCount; r++ {
		oa, ob := l.offsets(r)
		dst := y.Data[r*l.inner : (r+1)*l.inner]
		for j := range dst {
			v := x.Data[oa+j*l.isa]
			if v < 0 {
				v *= s.Data[ob+j*l.isb]
			}
			dst[j] = v
		}
	}
	return nil
}

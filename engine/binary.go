package engine

import (
	"fmt"
	"math"
)

// maxRank bounds the rank of tensors the broadcasting loops take.
const maxRank = 8

type binKind int

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
	binMax
	binMin
	binPow
	binMod
	binFmod
	binEqual
	binLess
	binGreater
	binLessEq
	binGreaterEq
	binAnd
	binOr
	binXor
	binBitShiftL
	binBitShiftR
)

// compares reports whether the result is bool (int) whatever the inputs are.
func (k binKind) compares() bool { return k >= binEqual }

// broadcastShape is numpy's broadcast of two shapes.
func broadcastShape(a, b []int) ([]int, error) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for i := 0; i < r; i++ {
		da, db := 1, 1
		if j := len(a) - r + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - r + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// bcast is the iteration layout of out = a ∘ b with broadcasting, after merging dims: outer
// dims walked with an odometer, then an inner run of length inner with strides sa, sb (0 or 1).
type bcast struct {
	rank       int // outer dims
	dims       [maxRank]int
	sa, sb     [maxRank]int // element strides of a and b per outer dim
	inner      int
	isa, isb   int // inner strides
	outerCount int
}

func makeBcast(out, a, b []int) (bcast, error) {
	var l bcast
	r := len(out)
	if r > maxRank {
		return l, fmt.Errorf("rank %d is above the supported %d", r, maxRank)
	}
	var dims, sa, sb [maxRank]int
	acc, bcc := 1, 1
	// strides per output dim (0 where broadcast)
	for i := r - 1; i >= 0; i-- {
		dims[i] = out[i]
		da, db := 1, 1
		if j := len(a) - r + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - r + i; j >= 0 {
			db = b[j]
		}
		if da != 1 {
			sa[i] = acc
		}
		if db != 1 {
			sb[i] = bcc
		}
		acc *= da
		bcc *= db
	}
	// merge adjacent dims whose strides continue each other; drop dims of size 1
	var md, ma, mb [maxRank]int
	m := 0
	for i := 0; i < r; i++ {
		if dims[i] == 1 {
			continue
		}
		if m > 0 && ma[m-1] == sa[i]*dims[i] && mb[m-1] == sb[i]*dims[i] {
			md[m-1] *= dims[i]
			ma[m-1], mb[m-1] = sa[i], sb[i]
			continue
		}
		md[m], ma[m], mb[m] = dims[i], sa[i], sb[i]
		m++
	}
	l.inner, l.isa, l.isb = 1, 0, 0
	if m > 0 {
		l.inner, l.isa, l.isb = md[m-1], ma[m-1], mb[m-1]
		m--
	}
	if l.isa > 1 || l.isb > 1 {
		// the innermost run is strided (cannot happen after merging, kept for safety)
		md[m], ma[m], mb[m] = l.inner, l.isa, l.isb
		m++
		l.inner, l.isa, l.isb = 1, 0, 0
	}
	l.rank = m
	l.outerCount = 1
	for i := 0; i < m; i++ {
		l.dims[i], l.sa[i], l.sb[i] = md[i], ma[i], mb[i]
		l.outerCount *= md[i]
	}
	return l, nil
}

// offsets returns a's and b's element offsets at outer index o.
func (l *bcast) offsets(o int) (oa, ob int) {
	for i := l.rank - 1; i >= 0; i-- {
		d := l.dims[i]
		q := o % d
		o /= d
		oa += q * l.sa[i]
		ob += q * l.sb[i]
	}
	return
}

// binaryFloat computes dst[i] = a[i] ∘ b[i] over a run, with a or b possibly a broadcast scalar.
func binaryFloat(k binKind, dst, a, b []float32, sa, sb int) {
	n := len(dst)
	switch {
	case sa == 1 && sb == 1:
		a, b = a[:n], b[:n]
		switch k {
		case binAdd:
			for i := range dst {
				dst[i] = a[i] + b[i]
			}
		case binSub:
			for i := range dst {
				dst[i] = a[i] - b[i]
			}
		case binMul:
			for i := range dst {
				dst[i] = a[i] * b[i]
			}
		case binDiv:
			for i := range dst {
				dst[i] = a[i] / b[i]
			}
		default:
			f := floatFunc(k)
			for i := range dst {
				dst[i] = f(a[i], b[i])
			}
		}
	case sa == 1:
		a = a[:n]
		y := b[0]
		switch k {
		case binAdd:
			for i := range dst {
				dst[i] = a[i] + y
			}
		case binSub:
			for i := range dst {
				dst[i] = a[i] - y
			}
		case binMul:
			for i := range dst {
				dst[i] = a[i] * y
			}
		case binDiv:
			for i := range dst {
				dst[i] = a[i] / y
			}
		default:
			f := floatFunc(k)
			for i := range dst {
				dst[i] = f(a[i], y)
			}
		}
	case sb == 1:
		b = b[:n]
		x := a[0]
		switch k {
		case binAdd:
			for i := range dst {
				dst[i] = x + b[i]
			}
		case binSub:
			for i := range dst {
				dst[i] = x - b[i]
			}
		case binMul:
			for i := range dst {
				dst[i] = x * b[i]
			}
		default:
			f := floatFunc(k)
			for i := range dst {
				dst[i] = f(x, b[i])
			}
		}
	default:
		v := floatFunc(k)(a[0], b[0])
		for i := range dst {
			dst[i] = v
		}
	}
}

func floatFunc(k binKind) func(a, b float32) float32 {
	switch k {
	case binAdd:
		return func(a, b float32) float32 { return a + b }
	case binSub:
		return func(a, b float32) float32 { return a - b }
	case binMul:
		return func(a, b float32) float32 { return a * b }
	case binDiv:
		return func(a, b float32) float32 { return a / b }
	case binMax:
		return func(a, b float32) float32 {
			if a != a || b != b {
				return float32(math.NaN())
			}
			return max(a, b)
		}
	case binMin:
		return func(a, b float32) float32 {
			if a != a || b != b {
				return float32(math.NaN())
			}
			return min(a, b)
		}
	case binPow:
		return func(a, b float32) float32 { return float32(math.Pow(float64(a), float64(b))) }
	case binMod, binFmod:
		// float Mod requires fmod=1 in ONNX: the result takes the sign of the dividend
		return func(a, b float32) float32 { return float32(math.Mod(float64(a), float64(b))) }
	}
	return func(a, b float32) float32 { return float32(math.NaN()) }
}

func compareFloat(k binKind, a, b float32) bool {
	switch k {
	case binEqual:
		return a == b
	case binLess:
		return a < b
	case binGreater:
		return a > b
	case binLessEq:
		return a <= b
	case binGreaterEq:
		return a >= b
	}
	return false
}

func intFunc(k binKind, a, b int64) (int64, error) {
	switch k {
	case binAdd:
		return a + b, nil
	case binSub:
		return a - b, nil
	case binMul:
		return a * b, nil
	case binDiv:
		if b == 0 {
			return 0, fmt.Errorf("integer division by zero")
		}
		return a / b, nil
	case binMax:
		return max(a, b), nil
	case binMin:
		return min(a, b), nil
	case binPow:
		return int64(math.Pow(float64(a), float64(b))), nil
	case binMod:
		if b == 0 {
			return 0, fmt.Errorf("integer modulo by zero")
		}
		m := a % b
		if m != 0 && (m < 0) != (b < 0) {
			m += b // Python-style sign (fmod=0)
		}
		return m, nil
	case binFmod:
		if b == 0 {
			return 0, fmt.Errorf("integer modulo by zero")
		}
		return a % b, nil
	case binEqual:
		return b2i(a == b), nil
	case binLess:
		return b2i(a < b), nil
	case binGreater:
		return b2i(a > b), nil
	case binLessEq:
		return b2i(a <= b), nil
	case binGreaterEq:
		return b2i(a >= b), nil
	case binAnd:
		return b2i(a != 0 && b != 0), nil
	case binOr:
		return b2i(a != 0 || b != 0), nil
	case binXor:
		return b2i((a != 0) != (b != 0)), nil
	case binBitShiftL:
		return int64(uint64(a) << uint64(b)), nil
	case binBitShiftR:
		return int64(uint64(a) >> uint64(b)), nil
	}
	return 0, fmt.Errorf("unsupported integer op")
}

func b2i(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// binaryOp is a two-input element-wise op with numpy broadcasting (Add, Mul, Equal, ...).
type binaryOp struct {
	kind binKind
	// work state of the current run (the op is reused across runs, which are serialised)
	l       bcast
	a, b, y []float32
	rt      rangeTask
}

func newBinary(k binKind) *binaryOp {
	o := &binaryOp{kind: k}
	o.rt.fn = o.apply
	return o
}

func (o *binaryOp) inPlace() bool { return !o.kind.compares() }

func (o *binaryOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("wants 2 inputs")
	}
	if in[0].IsInt() != in[1].IsInt() && o.kind != binPow {
		return nil, fmt.Errorf("mixes int and float inputs")
	}
	s, err := broadcastShape(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	return []spec{{shape: s, isInt: in[0].IsInt() || o.kind.compares()}}, nil
}

func (o *binaryOp) run(c *ctx, in, out []*Tensor) error {
	a, b, y := in[0], in[1], out[0]
	l, err := makeBcast(y.Shape, a.Shape, b.Shape)
	if err != nil {
		return err
	}
	if a.IsInt() || b.IsInt() || o.kind.compares() {
		return binaryGeneric(o.kind, l, a, b, y)
	}
	o.l, o.a, o.b, o.y = l, a.Data, b.Data, y.Data
	n := y.Len()
	if l.outerCount == 1 {
		c.parallelRange(l.inner, n, &o.rt)
	} else {
		c.parallelRange(l.outerCount, n, &o.rt)
	}
	return nil
}

// apply computes outer rows [lo, hi) (or inner elements [lo, hi) when there is one outer row).
func (o *binaryOp) apply(lo, hi int) {
	l := &o.l
	if l.outerCount == 1 {
		a, b := o.a, o.b
		if l.isa == 1 {
			a = a[lo:hi]
		}
		if l.isb == 1 {
			b = b[lo:hi]
		}
		binaryFloat(o.kind, o.y[lo:hi], a, b, l.isa, l.isb)
		return
	}
	for r := lo; r < hi; r++ {
		oa, ob := l.offsets(r)
		binaryFloat(o.kind, o.y[r*l.inner:(r+1)*l.inner], o.a[oa:], o.b[ob:], l.isa, l.isb)
	}
}

// binaryGeneric handles int inputs, comparisons and Pow of mixed types, one element at a time.
func binaryGeneric(k binKind, l bcast, a, b, y *Tensor) error {
	for r := 0; r < l.outerCount; r++ {
		oa, ob := l.offsets(r)
		for j := 0; j < l.inner; j++ {
			ia, ib, iy := oa+j*l.isa, ob+j*l.isb, r*l.inner+j
			switch {
			case a.IsInt() && b.IsInt():
				v, err := intFunc(k, a.Ints[ia], b.Ints[ib])
				if err != nil {
					return err
				}
				y.Ints[iy] = v
			case k.compares():
				y.Ints[iy] = b2i(compareFloat(k, a.Data[ia], b.Data[ib]))
			default: // Pow with one int operand: computed in float64, typed as the base
				x, e := floatAt(a, ia), floatAt(b, ib)
				v := math.Pow(x, e)
				if y.IsInt() {
					y.Ints[iy] = int64(v)
				} else {
					y.Data[iy] = float32(v)
				}
			}
		}
	}
	return nil
}

func floatAt(t *Tensor, i int) float64 {
	if t.IsInt() {
		return float64(t.Ints[i])
	}
	return float64(t.Data[i])
}

// variadicOp is Sum, Mean, Max or Min over any number of broadcast inputs.
type variadicOp struct {
	kind binKind
	mean bool
	bin  *binaryOp
}

func (o *variadicOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("wants at least 1 input")
	}
	s := in[0].Shape
	for _, t := range in[1:] {
		if t == nil {
			return nil, fmt.Errorf("input missing")
		}
		if t.IsInt() != in[0].IsInt() {
			return nil, fmt.Errorf("mixes int and float inputs")
		}
		var err error
		if s, err = broadcastShape(s, t.Shape); err != nil {
			return nil, err
		}
	}
	return []spec{{shape: append([]int{}, s...), isInt: in[0].IsInt()}}, nil
}

func (o *variadicOp) run(c *ctx, in, out []*Tensor) error {
	y := out[0]
	if len(in) == 1 {
		if err := expandInto(in[0], y); err != nil {
			return err
		}
	} else {
		if err := o.bin.run(c, []*Tensor{in[0], in[1]}, out); err != nil {
			return err
		}
		for _, t := range in[2:] {
			if err := o.bin.run(c, []*Tensor{y, t}, out); err != nil {
				return err
			}
		}
	}
	if o.mean {
		inv := 1 / float32(len(in))
		if y.IsInt() {
			for i := range y.Ints {
				y.Ints[i] /= int64(len(in))
			}
		} else {
			for i := range y.Data {
				y.Data[i] *= inv
			}
		}
	}
	return nil
}

// expandInto broadcasts x into y's shape.
func expandInto(x, y *Tensor) error {
	l, err := makeBcast(y.Shape, x.Shape, x.Shape)
	if err != nil {
		return err
	}
	for r := 0; r < l.outerCount; r++ {
		oa, _ := l.offsets(r)
		for j := 0; j < l.inner; j++ {
			if x.IsInt() {
				y.Ints[r*l.inner+j] = x.Ints[oa+j*l.isa]
			} else {
				y.Data[r*l.inner+j] = x.Data[oa+j*l.isa]
			}
		}
	}
	return nil
}

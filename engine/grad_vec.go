package engine

import "github.com/viterin/vek/vek32"

// Vector helpers for the backward passes: reductions on vek32's AVX2 kernels (scalar sums
// would wait on their accumulator every element).

// vsum is Σx.
func vsum(x []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	return vek32.Sum(x)
}

// vdot is Σx·y.
func vdot(x, y []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	return vek32.Dot(x, y[:len(x)])
}

// vadd adds src to dst.
func vadd(dst, src []float32) {
	if len(dst) == 0 {
		return
	}
	vek32.Add_Inplace(dst, src[:len(dst)])
}

// vaffine computes dst = a·x + b·y + c, or adds it to dst when acc; y is read only when b ≠ 0.
// Plain loops: without a loop-carried dependency they pipeline well, and one pass beats several
// SIMD passes.
func vaffine(dst, x, y []float32, a, b, c float32, acc bool) {
	x = x[:len(dst)]
	switch {
	case b == 0 && !acc:
		for i, v := range x {
			dst[i] = v*a + c
		}
	case b == 0:
		for i, v := range x {
			dst[i] += v*a + c
		}
	case !acc:
		y = y[:len(dst)]
		for i, v := range x {
			dst[i] = v*a + y[i]*b + c
		}
	default:
		y = y[:len(dst)]
		for i, v := range x {
			dst[i] += v*a + y[i]*b + c
		}
	}
}

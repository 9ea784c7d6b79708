package linalg

import "math"

// MinimizeBounded finds a local minimum of f on the closed interval [lo, hi] by Brent's method:
// golden-section steps that always shrink the bracket, replaced by a parabolic step through the three
// best points whenever that step is small and lands inside the bracket. It needs no derivative.
//
// The search stops when the point is known to within tol(x) = √ε·|x| + absTol/3, so a tiny absTol
// makes the tolerance relative to x; the result does not depend on the scale of the problem.
// It returns the best abscissa found and its value. f is never evaluated at lo or hi themselves.
func MinimizeBounded(f func(float64) float64, lo, hi, absTol float64, maxIter int) (x, fx float64) {
	const (
		golden  = 0.3819660112501051 // (3 − √5)/2, the golden-section fraction
		sqrtEps = 1.4901161193847656e-08
	)
	a, b := lo, hi
	// x is the best point so far, w the second best, v the previous value of w.
	x = a + golden*(b-a)
	fx = f(x)
	w, v := x, x
	fw, fv := fx, fx
	var step, prevStep float64 // the last step, and the one before it
	for iter := 0; iter < maxIter; iter++ {
		mid := 0.5 * (a + b)
		tol := sqrtEps*math.Abs(x) + absTol/3
		tol2 := 2 * tol
		if math.Abs(x-mid) <= tol2-0.5*(b-a) {
			break // the bracket is within tolerance of x
		}
		useGolden := true
		if math.Abs(prevStep) > tol {
			// Fit a parabola through (x,fx), (w,fw), (v,fv); its vertex is x + p/q.
			r := (x - w) * (fx - fv)
			q := (x - v) * (fx - fw)
			p := (x-v)*q - (x-w)*r
			q = 2 * (q - r)
			if q > 0 {
				p = -p
			}
			q = math.Abs(q)
			older := prevStep
			prevStep = step
			// Accept the vertex only when it moves less than half the step before last (so the
			// steps shrink geometrically) and stays strictly inside the bracket.
			if math.Abs(p) < math.Abs(0.5*q*older) && p > q*(a-x) && p < q*(b-x) {
				step = p / q
				u := x + step
				if u-a < tol2 || b-u < tol2 {
					step = math.Copysign(tol, mid-x) // too close to an end: step tol towards the middle
				}
				useGolden = false
			}
		}
		if useGolden {
			// Golden section into the larger of the two parts of the bracket.
			if x >= mid {
				prevStep = a - x
			} else {
				prevStep = b - x
			}
			step = golden * prevStep
		}
		// Never step by less than tol: f could not tell such points apart.
		u := x + math.Copysign(math.Max(math.Abs(step), tol), step)
		fu := f(u)
		if fu <= fx {
			if u >= x {
				a = x
			} else {
				b = x
			}
			v, fv = w, fw
			w, fw = x, fx
			x, fx = u, fu
			continue
		}
		if u < x {
			a = u
		} else {
			b = u
		}
		switch {
		case fu <= fw || w == x:
			v, fv = w, fw
			w, fw = u, fu
		case fu <= fv || v == x || v == w:
			v, fv = u, fu
		}
	}
	return x, fx
}

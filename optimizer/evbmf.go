package optimizer

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/linalg"
)

// EVBMFResult is the outcome of EVBMF, the analytic global solution of empirical variational Bayesian
// matrix factorisation (Nakajima, Tomioka, Sugiyama, Babacan, JMLR 2013; dimensionality recovery as
// in Nakajima, Sugiyama, Babacan, NIPS 2012) for a fully observed matrix Y ≈ B·Aᵀ + E with Gaussian
// noise E of unknown variance σ².
//
// The algorithm works on the L×M orientation with L ≤ M (a tall matrix is transposed, which leaves
// the singular values unchanged). This is a deliberate departure from the CONet/CONetV2 authors'
// VBMF.py, which assumes L ≤ M and runs its formulas with α = L/M > 1 on a tall matrix: of the 158
// layer sides of the bundled models 47 are tall, and there their code fails (crossed bounds) on 23
// and keeps another K on 16 (TestEVBMFTallDeparture). On wide matrices K is theirs
// (TestEVBMFWideMatchesAuthors, against testdata/evbmf_authors.py with scipy). Like theirs, the
// σ² search is local: on 15 of those 117 wide sides the free energy has a lower minimum elsewhere in
// the interval, whose K differs (by one or two). With the singular values s₁ ≥ … ≥ s_L of Y, α = L/M and
// τ̄ = 2.5129·√α:
//
//   - the noise variance σ² minimises the EVB free energy, which after optimising every other
//     variable is a sum over the singular values of a function of x = s²/(Mσ²) (see evbObjective);
//     it is found by a bounded 1-D search over [lower, upper] (the bounds of the NIPS 2012 paper);
//   - a component is kept when s > √(Mσ²(1+τ̄)(1+α/τ̄)), and its value is shrunk to
//     σ̂ = s/2·(1 − (L+M)σ²/s² + √((1 − (L+M)σ²/s²)² − 4LMσ⁴/s⁴)).
//
// EVBMFResult.Rank is the number K of kept components and Values holds their shrunk values.
type EVBMFResult struct {
	Rank     int       // K, the number of components above the threshold
	Values   []float64 // the K shrunk singular values σ̂, descending
	Sigma2   float64   // the estimated noise variance σ²
	Singular []float64 // all min(L,M) singular values of the input, descending
	L, M     int       // the orientation the estimate used: L = min(rows, cols), M = max(rows, cols)
}

// tauBarFactor is the constant of τ̄ = 2.5129·√α, the point where the EVB solution starts to prefer
// a non-zero component (the root of ψ₁(τ) = 0 below, computed numerically in the papers).
const tauBarFactor = 2.5129

// minimizeIters bounds the noise-variance search; Brent's method converges in a few dozen steps.
const minimizeIters = 500

// EVBMF estimates the rank of y by empirical variational Bayes (see EVBMFResult). It fails when y
// holds NaN or Inf or a factorisation does not converge. An empty or all-zero matrix has rank 0.
//
// The singular values come from the eigenvalues of the L×L Gram matrix of y's smaller side
// (linalg.GramSingularValues): 5–10 times faster than gonum's SVD, or its Dsyrk and Dsyev,
// on ResNet-50's layers. Each eigenvalue s² is then exact up to about L·ε·s₁². That is
// far below what the noise estimate needs, and below a millionth of every value near or above the
// threshold unless the threshold lies more than about six decades of s² below s₁² (a nearly
// noise-free matrix): then the estimate is repeated on the singular values of a full SVD.
func EVBMF(y mat.Matrix) (EVBMFResult, error) {
	r, c := y.Dims()
	if r == 0 || c == 0 {
		return EVBMFResult{L: min(r, c), M: max(r, c)}, nil
	}
	a := y
	if r > c {
		a = y.T() // L ≤ M: the Gram matrix and the SVD work on the small side
	}
	if err := checkFinite(a); err != nil {
		return EVBMFResult{}, err
	}
	l := min(r, c)
	if l >= gramMinRows {
		s, err := linalg.GramSingularValues(a)
		if err != nil {
			return EVBMFResult{}, fmt.Errorf("evbmf: %w", err)
		}
		res := EVBMFSpectrum(s, r, c)
		if t := evbThreshold(res.L, res.M, res.Sigma2); t*t > gramMargin*float64(l)*eps*s[0]*s[0] {
			return res, nil
		}
	}
	s, err := linalg.SVDSingularValues(a)
	if err != nil {
		return EVBMFResult{}, fmt.Errorf("evbmf: %w", err)
	}
	return EVBMFSpectrum(s, r, c), nil
}

const (
	eps = 0x1p-52
	// gramMinRows is the smallest L where the Gram route is taken; below it the SVD costs nothing.
	gramMinRows = 32
	// gramMargin: the Gram route's answer stands when the threshold² is above gramMargin·L·ε·s₁², so
	// that the error bound of every s² from the threshold up is at most a millionth of it.
	gramMargin = 1e6
)

// checkFinite reports the first NaN or Inf element of a.
func checkFinite(a mat.Matrix) error {
	if i, j, v, bad := firstNonFinite(a); bad {
		return fmt.Errorf("evbmf: element (%d,%d) is %v", i, j, v)
	}
	return nil
}

// firstNonFinite finds a NaN or Inf element of a, reading a dense matrix (or the transpose of one)
// row by row in its storage.
func firstNonFinite(a mat.Matrix) (i, j int, v float64, bad bool) {
	if t, ok := a.(mat.Transpose); ok {
		if _, ok := t.Matrix.(mat.RawMatrixer); ok {
			i, j, v, bad = firstNonFinite(t.Matrix)
			return j, i, v, bad
		}
	}
	r, c := a.Dims()
	if d, ok := a.(mat.RawMatrixer); ok {
		raw := d.RawMatrix()
		for i := 0; i < r; i++ {
			for j, v := range raw.Data[i*raw.Stride : i*raw.Stride+c] {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return i, j, v, true
				}
			}
		}
		return 0, 0, 0, false
	}
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			if v := a.At(i, j); math.IsNaN(v) || math.IsInf(v, 0) {
				return i, j, v, true
			}
		}
	}
	return 0, 0, 0, false
}

// EVBMFSpectrum runs EVBMF on a matrix of the given shape known only by its singular values, in any
// order. Values beyond min(rows, cols) are dropped (the smallest) and missing ones count as zero.
// It never fails: an empty, all-zero or single-row spectrum has rank 0.
func EVBMFSpectrum(singular []float64, rows, cols int) EVBMFResult {
	l, m := max(min(rows, cols), 0), max(rows, cols, 0)
	s := make([]float64, max(len(singular), l))
	for i, v := range singular {
		s[i] = math.Abs(v)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	s = s[:l]
	res := EVBMFResult{Singular: s, L: l, M: m}
	if l == 0 {
		return res
	}
	sigma2, ok := estimateNoise(s, l, m)
	if !ok {
		return res // no energy at all: nothing to keep
	}
	res.Sigma2 = sigma2

	threshold := evbThreshold(l, m, sigma2)
	lm, lplusm := float64(l)*float64(m), float64(l+m)
	for _, v := range s {
		if !(v > threshold) {
			break // descending: no later value passes either
		}
		// The EVB estimate of a kept component (Nakajima et al. 2013): the positive root of the
		// stationarity condition, written with t = σ²/s². Above the EVB threshold the square root's
		// argument is positive ((√L+√M)σ lies below the threshold); clamp only against rounding.
		t := sigma2 / (v * v)
		lin := 1 - lplusm*t
		disc := math.Max(lin*lin-4*lm*t*t, 0)
		res.Values = append(res.Values, v/2*(lin+math.Sqrt(disc)))
	}
	res.Rank = len(res.Values)
	return res
}

// evbThreshold is the smallest singular value EVB keeps: √(Mσ²(1+τ̄)(1+α/τ̄)) for an L×M matrix.
func evbThreshold(l, m int, sigma2 float64) float64 {
	if l == 0 || m == 0 {
		return 0
	}
	alpha := float64(l) / float64(m)
	tauBar := tauBarFactor * math.Sqrt(alpha)
	return math.Sqrt(float64(m) * sigma2 * (1 + tauBar) * (1 + alpha/tauBar))
}

// estimateNoise picks σ² by minimising the EVB free energy over the interval where its global
// minimiser lies. s is descending with l entries. ok is false when s carries no energy.
func estimateNoise(s []float64, l, m int) (sigma2 float64, ok bool) {
	var energy float64
	for _, v := range s {
		energy += v * v
	}
	if !(energy > 0) {
		return 0, false
	}
	alpha := float64(l) / float64(m)
	tauBar := tauBarFactor * math.Sqrt(alpha)
	xBar := (1 + tauBar) * (1 + alpha/tauBar)

	// The EVB solution keeps at most H̄ = ⌈L/(1+α)⌉ − 1 = ⌈LM/(L+M)⌉ − 1 components (computed in
	// integers so an exact quotient is not pushed over by rounding). The (H̄+1)-th value and those after
	// it are then noise, which bounds σ² from below; the total energy spread over all L·M entries
	// bounds it from above.
	hBar := (l*m+l+m-1)/(l+m) - 1
	var tail float64
	for _, v := range s[hBar:] {
		tail += v * v
	}
	lower := math.Max(s[hBar]*s[hBar]/(float64(m)*xBar), tail/float64(l-hBar)/float64(m))
	upper := energy / (float64(l) * float64(m))
	if !(lower < upper) {
		// Only when every value is equal (including a single value): the interval is one point.
		return upper, true
	}
	obj := func(v float64) float64 { return evbObjective(v, s, l, m, energy, alpha, xBar) }
	// The tolerance is relative (√ε·σ²; the absolute part is at most 1e-10 of any σ² in the interval,
	// or a floor thirty decades below the upper bound when the lower one is 0), so the estimate scales
	// with the matrix: EVBMF(c·Y) has c²·σ² and the same rank. (VBMF.py and AdaS use scipy's default
	// absolute tolerance 1e-5, which is coarser than σ² itself for typical trained weights.)
	absTol := math.Max(1e-10*lower, 1e-30*upper)
	sigma2, _ = linalg.MinimizeBounded(obj, lower, upper, absTol, minimizeIters)
	return sigma2, true
}

// evbObjective is the EVB free energy as a function of the noise variance v = σ², up to terms that do
// not depend on v (NIPS 2012, eq. for Ω): Σ_h ψ(x_h) with x_h = s_h²/(Mv),
//
//	ψ(x)  = x − ln x + [x > x̄]·ψ₁(x),
//	ψ₁(x) = ln(τ(x)+1) + α·ln(τ(x)/α + 1) − τ(x),
//	τ(x)  = ½·(x − (1+α) + √((x − (1+α))² − 4α)),
//
// where τ(x) inverts x = (1+τ)(1+α/τ) (the EVB estimate's signal-to-noise ratio) and x̄ = x(τ̄).
// Since −ln x_h = ln v + ln M − 2 ln s_h, the x − ln x part sums to energy/(Mv) + L·ln v plus a
// constant; writing it so keeps the objective finite when some s_h are exactly zero.
func evbObjective(v float64, s []float64, l, m int, energy, alpha, xBar float64) float64 {
	mv := float64(m) * v
	f := energy/mv + float64(l)*math.Log(v)
	for _, sv := range s {
		x := sv * sv / mv
		if x <= xBar {
			break // descending: the remaining values are all below x̄ and add no ψ₁ term
		}
		d := x - (1 + alpha)
		tau := 0.5 * (d + math.Sqrt(math.Max(d*d-4*alpha, 0)))
		f += math.Log(tau+1) + alpha*math.Log(tau/alpha+1) - tau
	}
	return f
}

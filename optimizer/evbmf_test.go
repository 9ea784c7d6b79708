package optimizer

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/linalg"
)

// lowRankPlusNoise returns U·diag(d)·Vᵀ + σ·N(0,1) for random orthonormal U (rows×r), V (cols×r).
func lowRankPlusNoise(rng *rand.Rand, rows, cols int, d []float64, sigma float64) *mat.Dense {
	r := len(d)
	y := mat.NewDense(rows, cols, nil)
	if r > 0 {
		u, v := randomOrthonormal(rng, rows, r), randomOrthonormal(rng, cols, r)
		var ud mat.Dense
		ud.Mul(u, mat.NewDiagDense(r, d))
		y.Mul(&ud, v.T())
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			y.Set(i, j, y.At(i, j)+sigma*rng.NormFloat64())
		}
	}
	return y
}

// randomOrthonormal returns an n×k matrix with orthonormal columns (the Q of a Gaussian matrix).
func randomOrthonormal(rng *rand.Rand, n, k int) *mat.Dense {
	g := mat.NewDense(n, k, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	return mat.DenseCopyOf(q.Slice(0, n, 0, k))
}

func TestEVBMFRecoversRank(t *testing.T) {
	const sigma = 0.1
	tests := []struct {
		name       string
		rows, cols int
		rank       int
		want       int // -1: full rank, want within one of the EVB cap H̄ = ⌈LM/(L+M)⌉ − 1
	}{
		{"tall", 200, 80, 5, 5},
		{"wide", 60, 150, 8, 8},
		{"square", 100, 100, 10, 10},
		{"square rank 1", 64, 64, 1, 1},
		{"very wide", 16, 576, 4, 4},
		{"very tall", 1152, 32, 6, 6},
		{"pure noise", 80, 120, 0, 0},
		{"pure noise tall", 300, 40, 0, 0},
		{"pure noise square", 50, 50, 0, 0},
		// Every component far above the noise, halving from one to the next: EVB can keep at most
		// H̄ < L of them (the (H̄+1)-th value bounds σ² from below, which puts the threshold above it),
		// and it keeps all but at most one of those.
		{"full rank", 20, 300, 20, -1},
		{"full rank square", 30, 30, 30, -1},
		{"full rank tall", 500, 12, 12, -1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i+1), 42))
			l, m := min(tc.rows, tc.cols), max(tc.rows, tc.cols)
			// Signal well above the noise edge (√L+√M)σ, spread over a factor 3.
			d := make([]float64, tc.rank)
			noise := sigma
			for k := range d {
				d[k] = 3 * (math.Sqrt(float64(l)) + math.Sqrt(float64(m))) * sigma * (3 - 2*float64(k)/float64(max(tc.rank, 1)))
				if tc.want < 0 {
					d[k], noise = 1e3*math.Pow(0.5, float64(k)), 1e-9
				}
			}
			y := lowRankPlusNoise(rng, tc.rows, tc.cols, d, noise)
			res, err := EVBMF(y)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if hBar := (l*m+l+m-1)/(l+m) - 1; want < 0 && (res.Rank == hBar-1 || res.Rank == hBar) {
				want = res.Rank
			} else if want < 0 {
				want = hBar
			}
			if res.Rank != want {
				t.Errorf("rank %d, want %d (σ² %.4g, true %.4g; s %.3g)", res.Rank, want, res.Sigma2, sigma*sigma, res.Singular[:min(len(res.Singular), want+3)])
			}
			if res.L != l || res.M != m || len(res.Singular) != l || len(res.Values) != res.Rank {
				t.Errorf("shape L=%d M=%d, %d singular, %d values; want L=%d M=%d, %d singular", res.L, res.M, len(res.Singular), len(res.Values), l, m, l)
			}
			// With most of the spectrum noise, σ² must come out near the true variance.
			if tc.want >= 0 && tc.rank < l/4 {
				if r := res.Sigma2 / (sigma * sigma); r < 0.8 || r > 1.25 {
					t.Errorf("σ² = %.4g, true %.4g", res.Sigma2, sigma*sigma)
				}
			}
			for k, v := range res.Values {
				if !(v > 0 && v < res.Singular[k]) {
					t.Errorf("shrunk value %d = %g, raw %g: want 0 < shrunk < raw", k, v, res.Singular[k])
				}
				if k > 0 && v > res.Values[k-1] {
					t.Errorf("shrunk values not descending at %d: %g", k, res.Values)
				}
			}
		})
	}
}

// The estimate does not depend on the orientation or the scale of the matrix.
func TestEVBMFInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	y := lowRankPlusNoise(rng, 40, 90, []float64{9, 6, 4}, 0.2)
	base, err := EVBMF(y)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := EVBMF(y.T())
	if err != nil {
		t.Fatal(err)
	}
	const c = 1e-3
	var scaled mat.Dense
	scaled.Scale(c, y)
	sc, err := EVBMF(&scaled)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		got   EVBMFResult
		scale float64
	}{{"transposed", tr, 1}, {"scaled", sc, c}} {
		if tc.got.Rank != base.Rank {
			t.Errorf("%s: rank %d, want %d", tc.name, tc.got.Rank, base.Rank)
			continue
		}
		if !relClose(tc.got.Sigma2, base.Sigma2*tc.scale*tc.scale, 1e-6) {
			t.Errorf("%s: σ² %g, want %g", tc.name, tc.got.Sigma2, base.Sigma2*tc.scale*tc.scale)
		}
		for k := range base.Values {
			if !relClose(tc.got.Values[k], base.Values[k]*tc.scale, 1e-6) {
				t.Errorf("%s: value %d = %g, want %g", tc.name, k, tc.got.Values[k], base.Values[k]*tc.scale)
			}
		}
	}
}

func relClose(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) }

func TestEVBMFDegenerate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	randDense := func(r, c int) *mat.Dense {
		y := mat.NewDense(r, c, nil)
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				y.Set(i, j, rng.NormFloat64())
			}
		}
		return y
	}
	ones := mat.NewDense(6, 9, nil)
	for i := 0; i < 6; i++ {
		for j := 0; j < 9; j++ {
			ones.Set(i, j, 1)
		}
	}
	rank2 := lowRankPlusNoise(rng, 30, 50, []float64{5, 2}, 0) // exactly rank 2, no noise
	rank3 := lowRankPlusNoise(rng, 100, 64, []float64{5, 2, 1}, 0)
	zeroRows := randDense(10, 40)
	for i := 5; i < 10; i++ {
		zeroRows.SetRow(i, make([]float64, 40))
	}
	tests := []struct {
		name string
		y    mat.Matrix
		want int
	}{
		{"zeros", mat.NewDense(5, 7, nil), 0},
		{"zeros 1x1", mat.NewDense(1, 1, nil), 0},
		// A single row or column carries one singular value, which EVB cannot tell from noise.
		{"1xN", randDense(1, 50), 0},
		{"Nx1", randDense(50, 1), 0},
		{"1x1", mat.NewDense(1, 1, []float64{3}), 0},
		{"constant", ones, 1},
		{"noise-free rank 2", rank2, 2},
		{"noise-free rank 3, large", rank3, 3}, // the Gram route cannot see this; the SVD must take over
		{"zero rows", zeroRows, -1},            // rank at most 5; exact zeros must not break the objective
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := EVBMF(tc.y)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want >= 0 && res.Rank != tc.want {
				t.Errorf("rank %d, want %d (σ² %g, s %g)", res.Rank, tc.want, res.Sigma2, res.Singular)
			}
			if tc.want < 0 && res.Rank > 5 {
				t.Errorf("rank %d, want at most 5", res.Rank)
			}
			if math.IsNaN(res.Sigma2) || res.Sigma2 < 0 {
				t.Errorf("σ² = %g", res.Sigma2)
			}
			for _, v := range res.Values {
				if math.IsNaN(v) || v <= 0 {
					t.Errorf("shrunk value %g", v)
				}
			}
		})
	}
	if _, err := EVBMF(mat.NewDense(2, 2, []float64{1, math.NaN(), 0, 1})); err == nil {
		t.Error("NaN input: want an error")
	}
	if _, err := EVBMF(mat.NewDense(2, 2, []float64{1, math.Inf(1), 0, 1})); err == nil {
		t.Error("Inf input: want an error")
	}
	if res := EVBMFSpectrum(nil, 0, 4); res.Rank != 0 {
		t.Errorf("empty spectrum: rank %d", res.Rank)
	}
	// Too few or too many values: missing ones are zeros, extra ones (the smallest) are dropped.
	short := EVBMFSpectrum([]float64{50, 40}, 10, 20)
	padded := EVBMFSpectrum([]float64{0, 40, 0, 0, 0, 0, 0, 0, 0, 50}, 10, 20)
	long := EVBMFSpectrum([]float64{50, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10, 20)
	for _, r := range []EVBMFResult{short, long} {
		if r.Rank != padded.Rank || r.Sigma2 != padded.Sigma2 || len(r.Singular) != 10 {
			t.Errorf("spectrum of %d values: K %d σ² %g; padded K %d σ² %g", len(r.Singular), r.Rank, r.Sigma2, padded.Rank, padded.Sigma2)
		}
	}
}

// evbLiteral is the free energy written term by term as in the paper, ψ(x) = x − ln x + [x > x̄]ψ₁(x).
func evbLiteral(v float64, s []float64, l, m int) float64 {
	alpha := float64(l) / float64(m)
	tb := tauBarFactor * math.Sqrt(alpha)
	xBar := (1 + tb) * (1 + alpha/tb)
	var f float64
	for _, sv := range s {
		x := sv * sv / (float64(m) * v)
		f += x - math.Log(x)
		if x > xBar {
			tau := (x - 1 - alpha + math.Sqrt((x-1-alpha)*(x-1-alpha)-4*alpha)) / 2
			f += math.Log(tau+1) + alpha*math.Log(tau/alpha+1) - tau
		}
	}
	return f
}

// The objective matches the paper's up to a constant, and the search finds its global minimum on the
// bounded interval (checked on a fine grid).
func TestEVBObjective(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	for _, sh := range [][3]int{{30, 80, 3}, {64, 64, 8}, {10, 400, 9}, {100, 130, 0}} {
		l, m, r := sh[0], sh[1], sh[2]
		d := make([]float64, r)
		for k := range d {
			d[k] = float64(2+k) * (math.Sqrt(float64(l)) + math.Sqrt(float64(m))) * 0.5
		}
		res, err := EVBMF(lowRankPlusNoise(rng, l, m, d, 1))
		if err != nil {
			t.Fatal(err)
		}
		s := res.Singular
		var energy float64
		for _, v := range s {
			energy += v * v
		}
		alpha := float64(l) / float64(m)
		tb := tauBarFactor * math.Sqrt(alpha)
		xBar := (1 + tb) * (1 + alpha/tb)
		ours := func(v float64) float64 { return evbObjective(v, s, l, m, energy, alpha, xBar) }
		v0 := res.Sigma2
		for _, v := range []float64{0.3 * v0, 0.9 * v0, 1.7 * v0} {
			got, want := ours(v)-ours(v0), evbLiteral(v, s, l, m)-evbLiteral(v0, s, l, m)
			if math.Abs(got-want) > 1e-8*math.Max(1, math.Abs(want)) {
				t.Errorf("%dx%d: objective difference %g, literal %g", l, m, got, want)
			}
		}
		hBar := (l*m+l+m-1)/(l+m) - 1
		var tail float64
		for _, v := range s[hBar:] {
			tail += v * v
		}
		lower := math.Max(s[hBar]*s[hBar]/(float64(m)*xBar), tail/float64(l-hBar)/float64(m))
		upper := energy / float64(l*m)
		if v0 < lower || v0 > upper {
			t.Errorf("%dx%d: σ² %g outside [%g, %g]", l, m, v0, lower, upper)
		}
		best := ours(v0)
		for i := 0; i <= 2000; i++ {
			v := lower + (upper-lower)*float64(i)/2000
			if v > 0 && ours(v) < best-1e-9*math.Abs(best) {
				t.Errorf("%dx%d: grid point σ²=%g has objective %g < %g at the estimate %g", l, m, v, ours(v), best, v0)
				break
			}
		}
	}
}

// The Gram route gives what a full SVD gives, including when the spectrum is too wide for it and the
// SVD takes over.
func TestEVBMFGramMatchesSVD(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	geometric := func(n int, ratio float64) []float64 {
		d := make([]float64, n)
		for k := range d {
			d[k] = math.Pow(ratio, float64(k))
		}
		return d
	}
	tests := []struct {
		name string
		y    *mat.Dense
	}{
		{"noise", lowRankPlusNoise(rng, 96, 200, nil, 1)},
		{"low rank", lowRankPlusNoise(rng, 300, 128, []float64{80, 60, 50, 40, 30}, 1)},
		{"decaying", lowRankPlusNoise(rng, 64, 576, geometric(64, 0.8), 1e-4)},
		{"six decades", lowRankPlusNoise(rng, 64, 576, geometric(64, 0.7), 1e-12)},
		{"noise-free", lowRankPlusNoise(rng, 48, 48, []float64{3, 2, 1}, 0)},
		// Kept values a millionth of the largest: their s² drown in the Gram route's rounding.
		{"twelve decades", lowRankPlusNoise(rng, 64, 200, []float64{1, 3e-6, 2e-6, 1e-6}, 1e-10)},
		{"sixteen decades", lowRankPlusNoise(rng, 64, 200, []float64{1, 3e-8, 2e-8, 1e-8}, 1e-12)},
	}
	for _, tc := range tests {
		got, err := EVBMF(tc.y)
		if err != nil {
			t.Fatal(err)
		}
		a := mat.Matrix(tc.y)
		if r, c := tc.y.Dims(); r > c {
			a = tc.y.T()
		}
		s, err := linalg.SVDSingularValues(a)
		if err != nil {
			t.Fatal(err)
		}
		r, c := tc.y.Dims()
		want := EVBMFSpectrum(s, r, c)
		// The free energy is flat at its minimum, so σ² (and the shrunk values with it) is only
		// determined to about 1e-7 relative; a lost value would be off by far more. σ² may also differ
		// by 1e-12·s₁² when there is no noise to speak of.
		sigmaOK := relClose(got.Sigma2, want.Sigma2, 1e-5) || math.Abs(got.Sigma2-want.Sigma2) < 1e-12*s[0]*s[0]
		valuesOK := len(got.Values) == len(want.Values)
		for k := range got.Values {
			valuesOK = valuesOK && relClose(got.Values[k], want.Values[k], 1e-5)
		}
		if got.Rank != want.Rank || !valuesOK || !sigmaOK {
			t.Errorf("%s: K %d σ² %g values %.8g\nSVD: K %d σ² %g values %.8g", tc.name, got.Rank, got.Sigma2, got.Values, want.Rank, want.Sigma2, want.Values)
		}
	}
}

func TestEVBMFWithVectors(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	// Shapes on both sides of gramMinRows, tall and wide, and one nearly noise-free (thin SVD).
	for _, sh := range [][3]float64{{40, 150, 0.05}, {150, 40, 0.05}, {64, 64, 0.05}, {20, 90, 0.05}, {90, 20, 0.05}, {50, 70, 1e-13}} {
		rows, cols := int(sh[0]), int(sh[1])
		y := lowRankPlusNoise(rng, rows, cols, []float64{40, 30, 20, 15}, sh[2])
		f, err := EVBMFWithVectors(y)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := EVBMF(y)
		if err != nil {
			t.Fatal(err)
		}
		if f.Rank != 4 || plain.Rank != 4 || !floatsClose(f.Values, plain.Values, 0) {
			t.Fatalf("%dx%d: K %d values %g, EVBMF K %d values %g", rows, cols, f.Rank, f.Values, plain.Rank, plain.Values)
		}
		if r, c := f.U.Dims(); r != rows || c != 4 {
			t.Fatalf("%dx%d: U is %dx%d", rows, cols, r, c)
		}
		if r, c := f.V.Dims(); r != cols || c != 4 {
			t.Fatalf("%dx%d: V is %dx%d", rows, cols, r, c)
		}
		// Orthonormal columns, and y·v_j = s_j·u_j.
		for _, m := range []*mat.Dense{f.U, f.V} {
			var g mat.Dense
			g.Mul(m.T(), m)
			if !mat.EqualApprox(&g, eye(4), 1e-9) {
				t.Errorf("%dx%d: columns not orthonormal:\n%v", rows, cols, mat.Formatted(&g))
			}
		}
		var yv, us mat.Dense
		yv.Mul(y, f.V)
		us.Mul(f.U, mat.NewDiagDense(4, f.Singular[:4]))
		if !mat.EqualApprox(&yv, &us, 1e-9*f.Singular[0]) {
			t.Errorf("%dx%d: y·V ≠ U·diag(s)", rows, cols)
		}
		// The same directions as gonum's thin SVD, up to sign.
		var svd mat.SVD
		svd.Factorize(y, mat.SVDThin)
		var u mat.Dense
		svd.UTo(&u)
		for j := 0; j < 4; j++ {
			if d := math.Abs(mat.Dot(f.U.ColView(j), u.ColView(j))); math.Abs(d-1) > 1e-9 {
				t.Errorf("%dx%d: |u_%d·u_svd| = %g, want 1", rows, cols, j, d)
			}
		}
	}
	// Nothing kept: no vectors.
	f, err := EVBMFWithVectors(lowRankPlusNoise(rng, 30, 60, nil, 1))
	if err != nil || f.Rank != 0 || f.U != nil || f.V != nil {
		t.Errorf("pure noise: K %d U %v V %v err %v", f.Rank, f.U, f.V, err)
	}
}

func eye(n int) *mat.Dense {
	m := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		m.Set(i, i, 1)
	}
	return m
}

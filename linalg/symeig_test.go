package linalg

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// SymEigenvalues against gonum's EigenSym, on sizes around the block size and on matrices with
// repeated, zero and widely spread eigenvalues.
func TestSymEigenvalues(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	random := func(n int) *mat.SymDense {
		s := mat.NewSymDense(n, nil)
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				s.SetSym(i, j, rng.NormFloat64())
			}
		}
		return s
	}
	gram := func(n, m, rank int, spread float64) *mat.SymDense {
		a := mat.NewDense(n, m, nil)
		for k := 0; k < rank; k++ {
			scale := math.Pow(spread, -float64(k)/float64(max(rank-1, 1)))
			u, v := make([]float64, n), make([]float64, m)
			for i := range u {
				u[i] = rng.NormFloat64()
			}
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			var o mat.Dense
			o.Outer(scale, mat.NewVecDense(n, u), mat.NewVecDense(m, v))
			a.Add(a, &o)
		}
		s := mat.NewSymDense(n, nil)
		s.SymOuterK(1, a)
		return s
	}
	diag := func(vals ...float64) *mat.SymDense {
		s := mat.NewSymDense(len(vals), nil)
		for i, v := range vals {
			s.SetSym(i, i, v)
		}
		return s
	}
	tests := []struct {
		name string
		a    *mat.SymDense
	}{
		{"1x1", diag(3)},
		{"2x2", random(2)},
		{"3x3", random(3)},
		{"zero", mat.NewSymDense(40, nil)},
		{"identity", diag(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
		{"diagonal", diag(5, -1, 0, 2, 2, 7, 1e-9, 3)},
		{"31", random(31)},
		{"32", random(32)},
		{"33", random(33)},
		{"65", random(65)},
		{"200", random(200)},
		{"gram full rank", gram(128, 300, 128, 10)},
		{"gram rank 5", gram(96, 150, 5, 1e3)},
		{"gram rank 0 of 70", gram(70, 80, 0, 1)},
		{"gram wide spread", gram(100, 120, 100, 1e6)},
	}
	for _, tc := range tests {
		n := tc.a.SymmetricDim()
		var ref mat.EigenSym
		if !ref.Factorize(tc.a, false) {
			t.Fatalf("%s: reference did not converge", tc.name)
		}
		want := ref.Values(nil)
		ld := n + 3
		buf := make([]float64, n*ld)
		norm := 0.0
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				buf[i*ld+j] = tc.a.At(i, j)
				norm = math.Max(norm, math.Abs(tc.a.At(i, j)))
			}
		}
		got, ok := SymEigenvalues(buf, n, ld)
		if !ok {
			t.Fatalf("%s: did not converge", tc.name)
		}
		tol := 1e-14 * float64(n) * float64(n) * math.Max(norm, 1e-300)
		for k := range want {
			if math.Abs(got[k]-want[k]) > tol {
				t.Errorf("%s: eigenvalue %d = %.16g, want %.16g (tolerance %g)", tc.name, k, got[k], want[k], tol)
				break
			}
		}
	}
}

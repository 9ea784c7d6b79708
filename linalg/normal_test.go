package linalg

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// SolveRidge against the closed form (XᵀX + λI)⁻¹XᵀY computed by gonum from the whole X, for row
// counts on both sides of a block, with and without a ridge, and on an all-zero X.
func TestNormalEquationsSolveRidge(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	tests := []struct {
		name    string
		n, d, k int
		ridge   float64
		zeroX   bool
	}{
		{"one row per unknown", 3, 3, 1, 0, false},
		{"less than a block", 100, 7, 3, 0, false},
		{"exactly a block", normalBlockRows, 5, 2, 0, false},
		{"several blocks and a part", 3*normalBlockRows + 17, 9, 4, 0, false},
		{"ridge", 600, 6, 2, 0.5, false},
		{"zero X", 50, 4, 2, 0.1, true},
		{"split in two halves", 2*normalBlockRows + 40, normalSplitUnknowns + 45, 5, 0, false},
	}
	for _, tc := range tests {
		x, y := mat.NewDense(tc.n, tc.d, nil), mat.NewDense(tc.n, tc.k, nil)
		sys := NewNormalEquations(tc.d, tc.k)
		for i := 0; i < tc.n; i++ {
			xr, yr := sys.Row()
			for j := range xr {
				if !tc.zeroX {
					xr[j] = rng.NormFloat64()
				}
				x.Set(i, j, xr[j])
			}
			for j := range yr {
				yr[j] = rng.NormFloat64()
				y.Set(i, j, yr[j])
			}
		}
		got, err := sys.SolveRidge(tc.ridge)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}

		var xtx, xty mat.Dense
		xtx.Mul(x.T(), x)
		xty.Mul(x.T(), y)
		lambda := tc.ridge * mat.Trace(&xtx) / float64(tc.d)
		if lambda == 0 {
			lambda = 1e-8
		}
		for i := 0; i < tc.d; i++ {
			xtx.Set(i, i, xtx.At(i, i)+lambda)
		}
		var want mat.Dense
		if err := want.Solve(&xtx, &xty); err != nil {
			t.Fatalf("%s: reference: %v", tc.name, err)
		}
		if r, c := got.Dims(); r != tc.d || c != tc.k {
			t.Fatalf("%s: solution is %d×%d, want %d×%d", tc.name, r, c, tc.d, tc.k)
		}
		if !mat.EqualApprox(got, &want, 1e-9*(1+mat.Norm(&want, math.Inf(1)))) {
			t.Errorf("%s: solution\n%v\nwant\n%v", tc.name, mat.Formatted(got), mat.Formatted(&want))
		}
	}
}

// A ridge of 0 on a rank-deficient X leaves a system Cholesky rejects, reported as an error.
func TestNormalEquationsSingular(t *testing.T) {
	sys := NewNormalEquations(2, 1)
	for i := 0; i < 10; i++ {
		x, y := sys.Row()
		x[0], x[1], y[0] = 1e6*float64(i), -1e6*float64(i), float64(i) // the columns cancel exactly
	}
	if w, err := sys.SolveRidge(0); err == nil {
		t.Errorf("rank-deficient X with λ = 1e-8 ≪ trace: got %v, want an error", mat.Formatted(w))
	}
}

package linalg

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// GramSingularValues against gonum's SVD and Gram against a·aᵀ, for every storage Gram reads in
// place (dense, transposed dense) and one it copies (a non-dense matrix), wide and tall, including
// shapes that leave partial GEMM tiles and a rank-deficient and an all-zero matrix.
func TestGramSingularValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	random := func(r, c int) *mat.Dense {
		d := mat.NewDense(r, c, nil)
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				d.Set(i, j, rng.NormFloat64())
			}
		}
		return d
	}
	rankTwo := func(r, c int) *mat.Dense {
		var d mat.Dense
		d.Mul(random(r, 2), random(2, c))
		return &d
	}
	tests := []struct {
		name string
		a    mat.Matrix
	}{
		{"1x1", mat.NewDense(1, 1, []float64{-3})},
		{"wide", random(5, 9)},
		{"tall", random(37, 6)},
		{"square", random(64, 64)},
		{"transposed wide", random(70, 130).T()},
		{"transposed tall", random(130, 33).T()},
		{"not dense", mat.NewDiagDense(4, []float64{1, -7, 0, 2})},
		{"rank two", rankTwo(40, 90)},
		{"zero", mat.NewDense(12, 20, nil)},
	}
	for _, tc := range tests {
		want, err := SVDSingularValues(tc.a)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := GramSingularValues(tc.a)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r, c := tc.a.Dims()
		l := min(r, c)
		if len(got) != l {
			t.Fatalf("%s: %d values, want %d", tc.name, len(got), l)
		}
		// s² is exact to a small multiple of L·ε·s₁², so s is within √(that) of the SVD's.
		tol := math.Sqrt(16*float64(l)*0x1p-52) * want[0]
		for k := range want {
			if math.Abs(got[k]-want[k]) > tol+1e-12*want[k] {
				t.Errorf("%s: value %d = %.16g, SVD %.16g (tolerance %g)", tc.name, k, got[k], want[k], tol)
			}
			if k > 0 && got[k] > got[k-1] {
				t.Errorf("%s: values not descending at %d: %v", tc.name, k, got)
			}
		}

		// The Gram matrix of the wide orientation, both triangles.
		w := tc.a
		if r > c {
			w = tc.a.T()
		}
		g := Gram(w)
		var ref mat.Dense
		ref.Mul(w, w.T())
		if g.N != l || g.Stride < l {
			t.Fatalf("%s: Gram is %d×%d with stride %d", tc.name, g.N, g.N, g.Stride)
		}
		for i := 0; i < l; i++ {
			for j := 0; j < l; j++ {
				if d := g.Data[i*g.Stride+j] - ref.At(i, j); math.Abs(d) > 1e-12*(1+math.Abs(ref.At(i, j))) {
					t.Fatalf("%s: Gram[%d][%d] = %g, want %g", tc.name, i, j, g.Data[i*g.Stride+j], ref.At(i, j))
				}
			}
		}
	}
}

// The stride of a Gram matrix is an odd multiple of 8 at least n.
func TestGramStride(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{0, 8}, {1, 8}, {8, 8}, {9, 24}, {16, 24}, {17, 24}, {24, 24}, {25, 40}, {256, 264}, {1000, 1000}} {
		if got := gramStride(tc.n); got != tc.want {
			t.Errorf("gramStride(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

package linalg

import (
	"errors"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// GramSingularValues returns the min(rows, cols) singular values of a, descending, as the square
// roots of the eigenvalues of the Gram matrix of its smaller side (rounding can leave the smallest
// slightly negative: they become 0). It is 5–10 times faster than gonum's SVD on the unfoldings of
// ResNet-50's layers, but each s² is exact only up to about L·ε·s₁² (L the smaller side), so values
// near or below √(L·ε)·s₁ lose their digits; SVDSingularValues keeps them.
func GramSingularValues(a mat.Matrix) ([]float64, error) {
	if r, c := a.Dims(); r > c {
		a = a.T()
	}
	g := Gram(a)
	ev, ok := SymEigenvalues(g.Data, g.N, g.Stride) // ascending
	if !ok {
		return nil, errors.New("linalg: eigendecomposition of the Gram matrix did not converge")
	}
	s := make([]float64, len(ev))
	for i, v := range ev {
		s[len(ev)-1-i] = math.Sqrt(math.Max(v, 0))
	}
	return s, nil
}

// Gram returns a·aᵀ for an l×m a, both triangles filled (a blas64.Symmetric reads the upper one).
// The upper triangle is computed by GemmNT and mirrored. Its rows are gramStride(l) apart. A dense
// matrix, or the transpose of one, is read in place; any other matrix is copied first.
func Gram(a mat.Matrix) blas64.Symmetric {
	l, m := a.Dims()
	var rows Strided
	switch d := a.(type) {
	case *mat.Dense:
		raw := d.RawMatrix()
		rows = Strided{Data: raw.Data, RowStride: raw.Stride, ColStride: 1}
	case mat.Transpose:
		if d, ok := d.Matrix.(*mat.Dense); ok { // a tall matrix's transpose: read it by columns
			raw := d.RawMatrix()
			rows = Strided{Data: raw.Data, RowStride: 1, ColStride: raw.Stride}
			break
		}
		rows = Strided{Data: mat.DenseCopyOf(a).RawMatrix().Data, RowStride: m, ColStride: 1}
	default:
		rows = Strided{Data: mat.DenseCopyOf(a).RawMatrix().Data, RowStride: m, ColStride: 1}
	}
	g := blas64.Symmetric{N: l, Stride: gramStride(l), Uplo: blas.Upper}
	g.Data = make([]float64, max(l-1, 0)*g.Stride+l)
	GemmNT(g.Data, g.Stride, rows, rows, l, l, m, true)
	MirrorUpper(g.Data, l, g.Stride)
	return g
}

// gramStride is the row stride of an n×n Gram matrix: the smallest odd multiple of 8 elements (one
// 64-byte cache line) from n up, so that consecutive rows start in different cache sets and a
// column touches all of them before one repeats (at a power-of-two stride, the usual layer width,
// every row of a column falls into the same sets).
func gramStride(n int) int {
	s := (n + 7) &^ 7
	if s%16 == 0 {
		s += 8
	}
	return s
}

// SVDSingularValues returns the singular values of a, descending, by gonum's SVD without vectors:
// slower than GramSingularValues, accurate to ε·s₁ for every value.
func SVDSingularValues(a mat.Matrix) ([]float64, error) {
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDNone) {
		return nil, errors.New("linalg: SVD did not converge")
	}
	return svd.Values(nil), nil
}

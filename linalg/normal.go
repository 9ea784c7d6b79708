package linalg

import (
	"errors"

	"gonum.org/v1/gonum/mat"
)

// NormalEquations accumulates XᵀX and XᵀY of a least-squares problem X·W ≈ Y (X is n×d, Y is n×k)
// one row at a time, without holding X or Y: the rows are buffered in blocks of normalBlockRows and
// each block is added by a symmetric rank-k update. Memory is O(d² + d·k) whatever n is.
type NormalEquations struct {
	d, k  int
	xtx   *mat.SymDense
	xty   *mat.Dense
	block []float64 // rows × d
	yblk  []float64 // rows × k
	rows  int
}

// normalBlockRows is the number of rows buffered before they are added to XᵀX and XᵀY.
const normalBlockRows = 256

// NewNormalEquations returns empty normal equations for d unknowns per output and k outputs.
func NewNormalEquations(d, k int) *NormalEquations {
	return &NormalEquations{d: d, k: k, xtx: mat.NewSymDense(d, nil), xty: mat.NewDense(d, k, nil),
		block: make([]float64, normalBlockRows*d), yblk: make([]float64, normalBlockRows*k)}
}

// Row returns the buffers of the next row's x (d values) and y (k values) for the caller to fill.
// They are valid until the next call to Row or SolveRidge.
func (s *NormalEquations) Row() (x, y []float64) {
	if s.rows == normalBlockRows {
		s.flush()
	}
	x = s.block[s.rows*s.d : (s.rows+1)*s.d]
	y = s.yblk[s.rows*s.k : (s.rows+1)*s.k]
	s.rows++
	return x, y
}

// flush adds the buffered rows to XᵀX and XᵀY.
func (s *NormalEquations) flush() {
	if s.rows == 0 {
		return
	}
	x := mat.NewDense(s.rows, s.d, s.block[:s.rows*s.d])
	y := mat.NewDense(s.rows, s.k, s.yblk[:s.rows*s.k])
	s.xtx.SymRankK(s.xtx, 1, x.T())
	var xy mat.Dense
	xy.Mul(x.T(), y)
	s.xty.Add(s.xty, &xy)
	s.rows = 0
}

// SolveRidge returns the d×k W minimising ‖X·W − Y‖² + λ‖W‖², by Cholesky on XᵀX + λI. The ridge is
// relative, so the solution does not depend on the scale of X: λ = ridge·trace(XᵀX)/d, or 1e-8 when
// that is 0 (ridge 0, or X all zero). It fails when the Cholesky factorisation finds XᵀX + λI not
// positive definite, which rounding can cause when X is nearly rank-deficient and λ tiny.
func (s *NormalEquations) SolveRidge(ridge float64) (*mat.Dense, error) {
	s.flush()
	tr := 0.0
	for i := 0; i < s.d; i++ {
		tr += s.xtx.At(i, i)
	}
	lambda := ridge * tr / float64(s.d)
	if lambda == 0 {
		lambda = 1e-8
	}
	a := mat.NewSymDense(s.d, nil)
	a.CopySym(s.xtx)
	for i := 0; i < s.d; i++ {
		a.SetSym(i, i, a.At(i, i)+lambda)
	}
	var ch mat.Cholesky
	if !ch.Factorize(a) {
		return nil, errors.New("the normal equations are not positive definite")
	}
	var w mat.Dense
	if err := ch.SolveTo(&w, s.xty); err != nil {
		return nil, err
	}
	return &w, nil
}

package optimizer

import (
	"errors"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/linalg"
)

// EVBMFFactors is an EVBMF estimate together with the singular vectors of its kept components.
type EVBMFFactors struct {
	EVBMFResult
	U *mat.Dense // rows × K: the left singular vectors of the matrix as given (not transposed)
	V *mat.Dense // cols × K: the right singular vectors; nil (both) when K = 0
}

// EVBMFWithVectors runs EVBMF on y and also returns the singular vectors of the K kept components,
// for projection-based channel importance. Row i of U (of V) is the share of output (input) unit i in
// each kept direction when y is a layer's output-side (input-side) unfolding.
//
// The vectors come from the eigenvectors of the Gram matrix of y's smaller side (far cheaper than a
// thin SVD, which gonum computes slowly: 24 s for a 1024×2048 matrix); the other side follows as
// yᵀu/s. Kept components lie above the noise threshold, where this is accurate; when EVBMF itself
// had to fall back to the SVD (a nearly noise-free matrix), or the matrix is small, a thin SVD gives
// the vectors. Each pair's sign is fixed so that the largest-magnitude entry of the smaller side's
// vector (U when rows ≤ cols) is positive.
func EVBMFWithVectors(y mat.Matrix) (EVBMFFactors, error) {
	res, err := EVBMF(y)
	if err != nil || res.Rank == 0 {
		return EVBMFFactors{EVBMFResult: res}, err
	}
	r, c := y.Dims()
	k := res.Rank
	// Work on the smaller side: a is L×M with L ≤ M, the transpose of y when y is tall.
	a, transposed := y, false
	if r > c {
		a, transposed = y.T(), true
	}
	l, m := a.Dims()
	small, big := mat.NewDense(l, k, nil), mat.NewDense(m, k, nil)
	t := evbThreshold(res.L, res.M, res.Sigma2)
	if l >= gramMinRows && t*t > gramMargin*float64(l)*eps*res.Singular[0]*res.Singular[0] {
		var gram mat.SymDense
		gram.SetRawSymmetric(linalg.Gram(a))
		var eig mat.EigenSym
		if !eig.Factorize(&gram, true) {
			return EVBMFFactors{}, errors.New("evbmf: eigendecomposition did not converge")
		}
		var vecs mat.Dense
		eig.VectorsTo(&vecs) // ascending eigenvalues: the top K are the last K columns, reversed
		for j := 0; j < k; j++ {
			small.SetCol(j, mat.Col(nil, l-1-j, &vecs))
		}
		// The other side: aᵀu_j / s_j, with s_j the singular value (not the shrunk one).
		big.Mul(a.T(), small)
		for j := 0; j < k; j++ {
			col := big.ColView(j).(*mat.VecDense)
			col.ScaleVec(1/res.Singular[j], col)
		}
	} else {
		var svd mat.SVD
		if !svd.Factorize(a, mat.SVDThin) {
			return EVBMFFactors{}, errors.New("evbmf: SVD did not converge")
		}
		var u, v mat.Dense
		svd.UTo(&u)
		svd.VTo(&v)
		small.Copy(u.Slice(0, l, 0, k))
		big.Copy(v.Slice(0, m, 0, k))
	}
	for j := 0; j < k; j++ {
		// Fix the sign: the entry of largest magnitude of the small side's vector is positive.
		col := small.ColView(j)
		best := 0.0
		for i := 0; i < l; i++ {
			if v := col.AtVec(i); math.Abs(v) > math.Abs(best) {
				best = v
			}
		}
		if best < 0 {
			for _, side := range []*mat.Dense{small, big} {
				c := side.ColView(j).(*mat.VecDense)
				c.ScaleVec(-1, c)
			}
		}
	}
	out := EVBMFFactors{EVBMFResult: res, U: small, V: big}
	if transposed {
		out.U, out.V = big, small
	}
	return out, nil
}

package linalg

import "math"

// A small float64 matrix product for Gram matrices (gram.go) and the updates of the tridiagonal
// reduction (symeig.go): C += A·Bᵀ, cut into blocks that stay in cache, packed, and
// computed 4×8 entries at a time by an AVX2 kernel (or plain Go with the same fused multiply-adds,
// so both give the same bits). gonum's BLAS has no vector kernel for these and runs them 3–5 times
// slower.

const (
	tileM, tileN = 4, 8 // the entries of C one kernel call computes
	blockK       = 256  // terms of the inner product per pass: a packed 8-row panel of B is 16 KiB
	blockM       = 64   // rows of A packed per pass: 128 KiB
)

// Strided is a read-only view of a matrix laid out in a flat slice: element (i, k) is
// Data[i*RowStride+k*ColStride]. A row-major matrix has ColStride 1, a column-major one RowStride 1,
// so a matrix and its transpose are read from the same storage.
type Strided struct {
	Data                 []float64
	RowStride, ColStride int
}

// At returns element (i, k).
func (s Strided) At(i, k int) float64 { return s.Data[i*s.RowStride+k*s.ColStride] }

// GemmNT adds a·bᵀ to the m×n matrix c (row-major, stride ldc): c[i][j] += Σ_k a(i,k)·b(j,k), for
// an m×k a and an n×k b. With upper, only the entries with j ≥ i are written (those below may be
// computed and are dropped). Each entry's sum runs over k in blocks of blockK, in order, with one
// fused multiply-add per term, so the result does not depend on the machine.
func GemmNT(c []float64, ldc int, a, b Strided, m, n, k int, upper bool) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	np := (n + tileN - 1) / tileN
	packB := make([]float64, np*tileN*min(k, blockK))
	packA := make([]float64, (blockM/tileM)*tileM*min(k, blockK))
	var tile [tileM * tileN]float64
	for k0 := 0; k0 < k; k0 += blockK {
		kc := min(blockK, k-k0)
		for p := 0; p < np; p++ {
			pack(packB[p*tileN*kc:(p+1)*tileN*kc], b, p*tileN, min(tileN, n-p*tileN), tileN, k0, kc)
		}
		for i0 := 0; i0 < m; i0 += blockM {
			mc := min(blockM, m-i0)
			ap := (mc + tileM - 1) / tileM
			for p := 0; p < ap; p++ {
				pack(packA[p*tileM*kc:(p+1)*tileM*kc], a, i0+p*tileM, min(tileM, m-i0-p*tileM), tileM, k0, kc)
			}
			for q := 0; q < np; q++ {
				j0 := q * tileN
				if upper && j0+tileN <= i0 {
					continue // the whole column panel lies below the diagonal of this row block
				}
				bq := packB[q*tileN*kc : (q+1)*tileN*kc]
				for p := 0; p < ap; p++ {
					ib := i0 + p*tileM
					pa := packA[p*tileM*kc : (p+1)*tileM*kc]
					switch {
					case upper && j0+tileN <= ib:
						continue
					case ib+tileM <= m && j0+tileN <= n && (!upper || j0 >= ib+tileM-1):
						mulAddTile4x8(kc, pa, bq, c[ib*ldc+j0:], ldc)
						continue
					}
					mulTile4x8(kc, pa, bq, &tile)
					for ii := 0; ii < min(tileM, m-ib); ii++ {
						row := c[(ib+ii)*ldc:]
						jStart := j0
						if upper {
							jStart = max(j0, ib+ii)
						}
						for j := jStart; j < min(j0+tileN, n); j++ {
							row[j] += tile[ii*tileN+j-j0]
						}
					}
				}
			}
		}
	}
}

// pack lays out rows i0..i0+rows−1 of s, terms k0..k0+kc−1, term by term: dst[kk*width+ii] holds
// s(i0+ii, k0+kk); rows from rows up to width are zero.
func pack(dst []float64, s Strided, i0, rows, width, k0, kc int) {
	switch {
	case s.ColStride == 1:
		for ii := 0; ii < rows; ii++ {
			src := s.Data[(i0+ii)*s.RowStride+k0 : (i0+ii)*s.RowStride+k0+kc]
			for kk, v := range src {
				dst[kk*width+ii] = v
			}
		}
	case s.RowStride == 1:
		for kk := 0; kk < kc; kk++ {
			off := (k0+kk)*s.ColStride + i0
			copy(dst[kk*width:kk*width+rows], s.Data[off:off+rows])
		}
	default:
		for ii := 0; ii < rows; ii++ {
			for kk := 0; kk < kc; kk++ {
				dst[kk*width+ii] = s.At(i0+ii, k0+kk)
			}
		}
	}
	for ii := rows; ii < width; ii++ {
		for kk := 0; kk < kc; kk++ {
			dst[kk*width+ii] = 0
		}
	}
}

// mulTile4x8Go is the kernel in Go: c[r*8+j] = Σ_kk a[kk*4+r]·b[kk*8+j], a fused multiply-add per
// term in order of kk, as the assembly does.
func mulTile4x8Go(k int, a, b []float64, c *[tileM * tileN]float64) {
	*c = [tileM * tileN]float64{}
	for kk := 0; kk < k; kk++ {
		av, bv := a[kk*tileM:kk*tileM+tileM], b[kk*tileN:kk*tileN+tileN]
		for r := 0; r < tileM; r++ {
			for j := 0; j < tileN; j++ {
				c[r*tileN+j] = math.FMA(av[r], bv[j], c[r*tileN+j])
			}
		}
	}
}

// mulAddTile4x8Go adds the tile mulTile4x8Go computes to the 4×8 block of c at rows ldc apart.
func mulAddTile4x8Go(k int, a, b, c []float64, ldc int) {
	var t [tileM * tileN]float64
	mulTile4x8Go(k, a, b, &t)
	for r := 0; r < tileM; r++ {
		row := c[r*ldc : r*ldc+tileN]
		for j := range row {
			row[j] += t[r*tileN+j]
		}
	}
}

package engine

import "math"

// packA packs the m×k row-major matrix a (row stride lda) into 4-row panels: panel i holds, for
// each step p, the 4 values a[4i..4i+3][p] (zero past row m). dst needs packedASize(m, k) floats.
func packA(dst, a []float32, m, k, lda int) {
	for i0 := 0; i0 < m; i0 += mr {
		panel := dst[i0*k : i0*k+mr*k]
		for i := 0; i < mr; i++ {
			if i0+i >= m {
				for p := 0; p < k; p++ {
					panel[p*mr+i] = 0
				}
				continue
			}
			row := a[(i0+i)*lda : (i0+i)*lda+k]
			for p, v := range row {
				panel[p*mr+i] = v
			}
		}
	}
}

// packATrans packs the transpose of a (a is k×m, row stride lda) like packA packs an m×k matrix.
func packATrans(dst, a []float32, m, k, lda int) {
	for i0 := 0; i0 < m; i0 += mr {
		panel := dst[i0*k : i0*k+mr*k]
		for p := 0; p < k; p++ {
			for i := 0; i < mr; i++ {
				if i0+i < m {
					panel[p*mr+i] = a[p*lda+i0+i]
				} else {
					panel[p*mr+i] = 0
				}
			}
		}
	}
}

// packedASize is the length of a packed m×k A.
func packedASize(m, k int) int { return roundUp(m, mr) * k }

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// tileWidth is the widest column tile the kernels take.
const tileWidth = 24

// kc is the largest number of k steps per block (see gemmTiles): 24 columns of B over kc steps
// stay in L1 while every panel of A passes over them.
var kc = 256

// blockK splits k into equal blocks of at most kc steps and returns the block size.
func blockK(k int) int {
	if k <= kc {
		return max(k, 1)
	}
	blocks := (k + kc - 1) / kc
	return (k + blocks - 1) / blocks
}

// blockKWide is blockK for 48-column tiles: blocks of at most kc/2 steps, so the tile of B is
// as large as a 24-column one's.
func blockKWide(k int) int {
	half := max(kc/2, 1)
	if k <= half {
		return max(k, 1)
	}
	blocks := (k + half - 1) / half
	return (k + blocks - 1) / blocks
}

var (
	negInf = float32(math.Inf(-1))
	posInf = float32(math.Inf(1))
)

// gemmTiles computes C[:, j0:j1] = clamp(packedA·B + bias (+ res), lo, hi) for all m rows, where
// B's column j at step p is b[boff + offs[p] + j]. bias has roundUp(m, 4) values. c and res have
// row stride ldc and start at coff; res may be nil. It walks column tiles (48 wide with AVX-512
// while 48 columns remain, so no read runs past j1; 24 wide otherwise) and, inside each, every
// 4-row panel of A; k is split in blocks of kc steps (half as many for 48-wide tiles) so a tile of
// B stays in L1.
func gemmTiles(pa []float32, m, k int, b []float32, boff int, offs []int32, j0, j1 int,
	c []float32, coff, ldc int, res []float32, bias []float32, lo, hi float32) {
	var zero [mr]float32
	var p kargs
	p.ldc, p.ldr = ldc, ldc
	for j, width := j0, 0; j < j1; j += width {
		wide := haveAVX512 && j1-j >= 2*tileWidth
		width = tileWidth
		kb := blockK(k)
		if wide {
			width = 2 * tileWidth
			kb = blockKWide(k)
		}
		p.ncols = min(width, j1-j)
		for k0 := 0; k0 < k || k0 == 0; k0 += kb {
			p.k = min(kb, k-k0)
			first, last := k0 == 0, k0+kb >= k
			if p.k > 0 {
				p.offs = &offs[k0]
			}
			p.b = &b[boff+j]
			p.lo, p.hi = negInf, posInf
			if last {
				p.lo, p.hi = lo, hi
			}
			for i := 0; i < m; i += mr {
				if p.k > 0 {
					p.a = &pa[i*k+k0*mr]
				}
				p.mrows = min(mr, m-i)
				p.c = &c[coff+i*ldc+j]
				switch {
				case !first:
					p.res, p.bias = p.c, &zero[0]
				case res != nil:
					p.res, p.bias = &res[coff+i*ldc+j], &bias[i]
				default:
					p.res, p.bias = nil, &bias[i]
				}
				if wide {
					kern48(&p)
				} else {
					kernel(&p)
				}
			}
		}
	}
}

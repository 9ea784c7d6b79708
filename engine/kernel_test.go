package engine

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestKernels checks the assembly micro-kernels against the portable one for every width,
// column count, row count and epilogue.
func TestKernels(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2/FMA: only the portable kernel runs here")
	}
	rng := rand.New(rand.NewSource(1))
	const k, ldb, ldc = 37, 40, 31
	a := randSlice(rng, k*mr)
	b := randSlice(rng, k*ldb+slack)
	res := randSlice(rng, 4*ldc+slack)
	bias := randSlice(rng, mr)
	offs := make([]int32, k)
	for p := range offs {
		offs[p] = int32(p * ldb)
	}
	inf := float32(math.Inf(1))
	for _, nr := range []int{24, 16, 8} {
		for ncols := max(1, nr-7); ncols <= nr; ncols++ {
			for mrows := 1; mrows <= 4; mrows++ {
				for _, withRes := range []bool{false, true} {
					for _, clamp := range [][2]float32{{-inf, inf}, {0, 6}} {
						got := make([]float32, 4*ldc+slack)
						want := make([]float32, 4*ldc+slack)
						p := kargs{a: &a[0], b: &b[0], offs: &offs[0], k: k, ldc: ldc, bias: &bias[0],
							ncols: ncols, mrows: mrows, lo: clamp[0], hi: clamp[1], ldr: ldc}
						if withRes {
							p.res = &res[0]
						}
						p.c = &want[0]
						kernelGo(&p, nr)
						p.c = &got[0]
						switch nr {
						case 24:
							kern24(&p)
						case 16:
							kern16(&p)
						case 8:
							kern8(&p)
						}
						for i := range got {
							if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
								t.Fatalf("nr %d ncols %d mrows %d res %v: c[%d] = %v, want %v", nr, ncols, mrows, withRes, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// TestKernel48 checks the AVX-512 4×48 GEMM kernel against the portable one, with and without a
// residual and a clamp, for every number of valid rows.
func TestKernel48(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512: gemmTiles uses 24-column tiles here")
	}
	rng := rand.New(rand.NewSource(4))
	const k, ldb, ldc = 37, 53, 51
	a := randSlice(rng, k*mr)
	b := randSlice(rng, k*ldb+slack)
	res := randSlice(rng, 4*ldc+slack)
	bias := randSlice(rng, mr)
	offs := make([]int32, k)
	for p := range offs {
		offs[p] = int32(p * ldb)
	}
	inf := float32(math.Inf(1))
	for mrows := 1; mrows <= 4; mrows++ {
		for _, withRes := range []bool{false, true} {
			for _, clamp := range [][2]float32{{-inf, inf}, {0, 1}} {
				got := make([]float32, 4*ldc+slack)
				want := make([]float32, 4*ldc+slack)
				p := kargs{a: &a[0], b: &b[0], offs: &offs[0], k: k, ldc: ldc, bias: &bias[0],
					ncols: 48, mrows: mrows, lo: clamp[0], hi: clamp[1], ldr: ldc}
				if withRes {
					p.res = &res[0]
				}
				p.c = &want[0]
				kern48Go(&p)
				p.c = &got[0]
				kern48(&p)
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
						t.Fatalf("mrows %d res %v clamp %v: c[%d] = %v, want %v", mrows, withRes, clamp, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestSegmentKernel checks the assembly segment kernels (8-column segments with AVX2, 16-column
// with AVX-512) against the portable one.
func TestSegmentKernel(t *testing.T) {
	for _, c := range []struct {
		width int
		have  bool
		kern  func(*segArgs)
	}{{8, haveAVX2, kernSeg}, {16, haveAVX512, kernSeg16}} {
		t.Run(fmt.Sprintf("width%d", c.width), func(t *testing.T) {
			if !c.have {
				t.Skip("no assembly kernel for this width on this CPU")
			}
			rng := rand.New(rand.NewSource(2))
			const k = 29
			ldc := 7 * c.width
			a := randSlice(rng, k*mr)
			b := randSlice(rng, 200+k*3+slack)
			bias := randSlice(rng, mr)
			res := randSlice(rng, 4*ldc+slack)
			offs := make([]int32, k)
			for p := range offs {
				offs[p] = int32(p * 3)
			}
			inf := float32(math.Inf(1))
			for trial := 0; trial < 200; trial++ {
				got := make([]float32, 4*ldc+slack)
				want := make([]float32, 4*ldc+slack)
				p := segArgs{a: &a[0], offs: &offs[0], k: k, ldc: ldc, bias: &bias[0], lo: -inf, hi: inf, mrows: 1 + trial%4}
				if trial%3 == 0 {
					p.lo, p.hi = 0, 1
				}
				if trial%7 == 0 {
					p.k = 0
				}
				var cOff [3]int
				if c.width == 16 && trial%4 >= 2 { // two rows per segment, as on 7-wide maps
					p.skip = 9 + rng.Intn(3)
				}
				for v := 0; v < 3; v++ {
					p.b[v] = &b[rng.Intn(200)]
					p.n[v] = rng.Intn(c.width + 1)
					if p.skip > 0 {
						p.n[v] = rng.Intn(p.skip - 1)
						p.n2[v] = rng.Intn(16 - p.skip + 1)
					}
					cOff[v] = v*2*c.width + rng.Intn(c.width)
					if trial%2 == 1 {
						p.res[v] = &res[cOff[v]]
					}
				}
				for v := 0; v < 3; v++ {
					p.c[v] = &want[cOff[v]]
				}
				p.setMasks()
				kernelSegWidthGo(&p, c.width)
				for v := 0; v < 3; v++ {
					p.c[v] = &got[cOff[v]]
				}
				c.kern(&p)
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
						t.Fatalf("trial %d: c[%d] = %v, want %v (n %v)", trial, i, got[i], want[i], p.n)
					}
				}
			}
		})
	}
}

// TestDepthwiseKernel checks the assembly depthwise row kernel against the portable one.
func TestDepthwiseKernel(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2/FMA")
	}
	rng := rand.New(rand.NewSource(3))
	src := randSlice(rng, 400+slack)
	w := randSlice(rng, 9)
	offs := []int32{0, 1, 2, 30, 31, 32, 60, 61, 62}
	for n := 1; n < 100; n++ {
		got := make([]float32, n+8)
		want := make([]float32, n+8)
		p := dwArgs{src: &src[n%5], offs: &offs[0], w: &w[0], taps: 9, n: n, bias: 0.5, lo: -1, hi: 2}
		p.dst = &want[0]
		dwRowGo(&p)
		p.dst = &got[0]
		dwRow(&p)
		for i := range got {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
				t.Fatalf("n %d: dst[%d] = %v, want %v", n, i, got[i], want[i])
			}
		}
	}
}

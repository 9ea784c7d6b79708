package engine

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/viterin/vek/vek32"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// gemmSizes are a square GEMM and the GEMMs of ResNet-8's convs (Cout × HW × Cin·9) per image.
var gemmSizes = [][3]int{{1024, 1024, 1024}, {16, 784, 144}, {32, 196, 288}, {64, 49, 576}}

// ownGemm is C = A·B with this package's kernels, A packed per call, B read in place (or packed in
// KC×24 panels when packB), columns split over the given number of goroutines.
func ownGemm(m, n, k int, a, b, c []float32, threads int, packB bool, pa, pb []float32, offs []int32) {
	packA(pa, a, m, k, k)
	bias := make([]float32, roundUp(m, mr))
	var wg sync.WaitGroup
	tiles := (n + tileWidth - 1) / tileWidth
	for t := 0; t < threads; t++ {
		lo, hi := t*tiles/threads*tileWidth, min(n, (t+1)*tiles/threads*tileWidth)
		wg.Add(1)
		go func(lo, hi int, pb []float32) {
			defer wg.Done()
			if !packB {
				gemmTiles(pa, m, k, b, 0, offs, lo, hi, c, 0, n, nil, bias, negInf, posInf)
				return
			}
			// pack each 24-column panel of B, then run all A panels on it
			po := make([]int32, k)
			for p := range po {
				po[p] = int32(p * tileWidth)
			}
			for j := lo; j < hi; j += tileWidth {
				w := min(tileWidth, hi-j)
				for p := 0; p < k; p++ {
					copy(pb[p*tileWidth:p*tileWidth+w], b[p*n+j:p*n+j+w])
				}
				gemmTiles(pa, m, k, pb, -j, po, j, j+w, c, 0, n, nil, bias, negInf, posInf)
			}
		}(lo, hi, pb[t*(k*tileWidth+slack):(t+1)*(k*tileWidth+slack)])
	}
	wg.Wait()
}

func BenchmarkGEMM(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, sz := range gemmSizes {
		m, n, k := sz[0], sz[1], sz[2]
		a, bb := randSlice(rng, m*k), randSlice(rng, k*n+slack)
		c := make([]float32, m*n+slack)
		flops := 2 * float64(m*n*k)
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("gonum/%dx%dx%d/t%d", m, n, k, threads), func(b *testing.B) {
				if threads != 2 {
					b.Skip("gonum picks its own parallelism")
				}
				impl := gonum.Implementation{}
				for i := 0; i < b.N; i++ {
					impl.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bb, n, 0, c, n)
				}
				report(b)
			})
			b.Run(fmt.Sprintf("vek32/%dx%dx%d/t%d", m, n, k, threads), func(b *testing.B) {
				if threads != 2 {
					b.Skip("vek32 picks its own parallelism")
				}
				for i := 0; i < b.N; i++ {
					vek32.MatMul_Into(c, a, bb[:k*n], k)
				}
				report(b)
			})
			for _, packB := range []bool{false, true} {
				b.Run(fmt.Sprintf("own-packB=%v/%dx%dx%d/t%d", packB, m, n, k, threads), func(b *testing.B) {
					pa := make([]float32, packedASize(m, k))
					pb := make([]float32, threads*(k*tileWidth+slack))
					offs := make([]int32, k)
					for p := range offs {
						offs[p] = int32(p * n)
					}
					for i := 0; i < b.N; i++ {
						ownGemm(m, n, k, a, bb, c, threads, packB, pa, pb, offs)
					}
					report(b)
				})
			}
		}
	}
}

func BenchmarkKC(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	defer func(v int) { kc = v }(kc)
	for _, sz := range gemmSizes[1:] {
		m, n, k := sz[0], sz[1], sz[2]
		a, bb := randSlice(rng, m*k), randSlice(rng, k*n+slack)
		c := make([]float32, m*n+slack)
		for _, kcv := range []int{64, 128, 192, 256, 100000} {
			kc = kcv
			b.Run(fmt.Sprintf("kc%d/%dx%dx%d", kcv, m, n, k), func(b *testing.B) {
				pa := make([]float32, packedASize(m, k))
				offs := make([]int32, k)
				for p := range offs {
					offs[p] = int32(p * n)
				}
				for i := 0; i < b.N; i++ {
					ownGemm(m, n, k, a, bb, c, 1, false, pa, make([]float32, k*tileWidth+slack), offs)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

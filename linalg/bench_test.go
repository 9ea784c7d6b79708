package linalg

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGram measures the Gram matrices of ResNet-50's largest unfoldings (upper triangle).
func BenchmarkGram(b *testing.B) {
	for _, s := range [][2]int{{512, 4608}, {1024, 2048}, {256, 2304}} {
		l, m := s[0], s[1]
		rng := rand.New(rand.NewPCG(1, 2))
		d := make([]float64, l*m)
		for i := range d {
			d[i] = rng.NormFloat64()
		}
		c := make([]float64, l*l)
		b.Run(fmt.Sprintf("%dx%d", l, m), func(b *testing.B) {
			for range b.N {
				GemmNT(c, l, Strided{d, m, 1}, Strided{d, m, 1}, l, l, m, true)
			}
			b.ReportMetric(float64(l)*float64(l)*float64(m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSymEigenvalues measures the tridiagonal reduction and QL iteration on Gram matrices of
// ResNet-50's sizes.
func BenchmarkSymEigenvalues(b *testing.B) {
	for _, n := range []int{256, 512, 1024} {
		rng := rand.New(rand.NewPCG(1, 2))
		m := 2 * n
		d := make([]float64, n*m)
		for i := range d {
			d[i] = rng.NormFloat64()
		}
		ld := gramStride(n)
		g := make([]float64, n*ld)
		GemmNT(g, ld, Strided{d, m, 1}, Strided{d, m, 1}, n, n, m, true)
		MirrorUpper(g, n, ld)
		work := make([]float64, len(g))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				copy(work, g)
				SymEigenvalues(work, n, ld)
			}
		})
	}
}

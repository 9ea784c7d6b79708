package linalg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// GemmNT against a plain triple loop, over shapes that leave partial tiles and blocks on every side,
// for both kernels.
func TestGemmNT(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {4, 8, 256}, {5, 9, 257}, {64, 64, 64}, {67, 70, 300}, {130, 17, 513}, {9, 200, 40}}
	asm := haveFMA
	defer func() { haveFMA = asm }()
	for _, useAsm := range []bool{false, true} {
		if useAsm && !asm {
			continue
		}
		haveFMA = useAsm
		for _, s := range shapes {
			m, n, k := s[0], s[1], s[2]
			// a is m×k row-major; b is given column-major (k×n) to exercise the strides.
			ad := make([]float64, m*k)
			bd := make([]float64, k*n)
			for i := range ad {
				ad[i] = rng.NormFloat64()
			}
			for i := range bd {
				bd[i] = rng.NormFloat64()
			}
			a, b := Strided{ad, k, 1}, Strided{bd, 1, n}
			for _, upper := range []bool{false, true} {
				ldc := n + 3
				c := make([]float64, m*ldc)
				for i := range c {
					c[i] = 1
				}
				GemmNT(c, ldc, a, b, m, n, k, upper)
				for i := 0; i < m; i++ {
					for j := 0; j < ldc; j++ {
						want := 1.0
						if j < n && (!upper || j >= i) {
							var scale float64
							for kk := 0; kk < k; kk++ {
								want += a.At(i, kk) * b.At(j, kk)
								scale += math.Abs(a.At(i, kk) * b.At(j, kk))
							}
							if math.Abs(c[i*ldc+j]-want) > 1e-13*(scale+1) {
								t.Fatalf("asm %v %v upper %v: c[%d][%d] = %v, want %v", useAsm, s, upper, i, j, c[i*ldc+j], want)
							}
							continue
						}
						if c[i*ldc+j] != want {
							t.Fatalf("asm %v %v upper %v: c[%d][%d] = %v written, want it left at 1", useAsm, s, upper, i, j, c[i*ldc+j])
						}
					}
				}
			}
		}
	}
}

// The assembly and Go kernels give the same bits.
func TestMulTileKernelsAgree(t *testing.T) {
	if !haveFMA {
		t.Skip("no AVX2/FMA")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{0, 1, 2, 7, 256} {
		a, b := make([]float64, tileM*max(k, 1)), make([]float64, tileN*max(k, 1))
		for i := range a {
			a[i] = rng.NormFloat64() * math.Exp(4*rng.NormFloat64())
		}
		for i := range b {
			b[i] = rng.NormFloat64() * math.Exp(4*rng.NormFloat64())
		}
		var x, y [tileM * tileN]float64
		mulTile4x8(k, a, b, &x)
		mulTile4x8Go(k, a, b, &y)
		if x != y {
			t.Errorf("k=%d: assembly %v\nGo %v", k, x, y)
		}
		const ldc = 11
		c1 := make([]float64, (tileM-1)*ldc+tileN)
		for i := range c1 {
			c1[i] = rng.NormFloat64()
		}
		c2 := append([]float64(nil), c1...)
		mulAddTile4x8(k, a, b, c1, ldc)
		mulAddTile4x8Go(k, a, b, c2, ldc)
		for i := range c1 {
			if c1[i] != c2[i] {
				t.Errorf("k=%d: added tile: assembly %v\nGo %v", k, c1, c2)
				break
			}
		}
	}
}

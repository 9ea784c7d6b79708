package linalg

import "golang.org/x/sys/cpu"

// haveFMA selects the assembly tile kernel.
var haveFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func mulTile4x8AVX2(k int, a, b, c *float64)

//go:noescape
func mulAddTile4x8AVX2(k int, a, b, c *float64, ldc int)

func mulTile4x8(k int, a, b []float64, c *[tileM * tileN]float64) {
	if haveFMA && k > 0 {
		_, _ = a[tileM*k-1], b[tileN*k-1]
		mulTile4x8AVX2(k, &a[0], &b[0], &c[0])
		return
	}
	mulTile4x8Go(k, a, b, c)
}

func mulAddTile4x8(k int, a, b, c []float64, ldc int) {
	if haveFMA && k > 0 {
		_, _, _ = a[tileM*k-1], b[tileN*k-1], c[(tileM-1)*ldc+tileN-1]
		mulAddTile4x8AVX2(k, &a[0], &b[0], &c[0], ldc)
		return
	}
	mulAddTile4x8Go(k, a, b, c, ldc)
}

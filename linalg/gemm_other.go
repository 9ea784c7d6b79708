//go:build !amd64

package linalg

// haveFMA is false: there is no assembly kernel here (the tests read it).
var haveFMA = false

func mulTile4x8(k int, a, b []float64, c *[tileM * tileN]float64) { mulTile4x8Go(k, a, b, c) }

func mulAddTile4x8(k int, a, b, c []float64, ldc int) { mulAddTile4x8Go(k, a, b, c, ldc) }

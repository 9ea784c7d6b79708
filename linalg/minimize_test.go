package linalg

import (
	"math"
	"testing"
)

func TestMinimizeBounded(t *testing.T) {
	tests := []struct {
		name   string
		f      func(float64) float64
		lo, hi float64
		want   float64
	}{
		{"parabola", func(x float64) float64 { return (x - 0.3) * (x - 0.3) }, 0, 1, 0.3},
		{"minimum at the upper end", func(x float64) float64 { return (x - 2) * (x - 2) }, 0, 1, 1},
		{"minimum at the lower end", func(x float64) float64 { return x }, 5, 6, 5},
		{"not smooth", func(x float64) float64 { return math.Abs(x - 1e-7) }, 0, 1e-6, 1e-7},
		{"cosine", math.Cos, 2, 4, math.Pi},
		{"tiny scale", func(x float64) float64 { return x/3e-9 - math.Log(x) }, 1e-10, 1e-8, 3e-9},
	}
	for _, tc := range tests {
		x, fx := MinimizeBounded(tc.f, tc.lo, tc.hi, 1e-12*tc.hi, 500)
		if math.Abs(x-tc.want) > 1e-6*math.Max(math.Abs(tc.want), tc.hi-tc.lo) {
			t.Errorf("%s: x = %.12g, want %.12g", tc.name, x, tc.want)
		}
		if fx != tc.f(x) {
			t.Errorf("%s: f(x) = %g, returned %g", tc.name, tc.f(x), fx)
		}
	}
}

package engine

import (
	"math"
	"testing"
)

func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-110); x < 90; x += 0.0137 {
		got, want := float64(exp32(x)), math.Exp(float64(x))
		if want > math.MaxFloat32 {
			if !math.IsInf(got, 1) {
				t.Fatalf("exp32(%v) = %v, want +Inf", x, got)
			}
			continue
		}
		if want < 1e-37 { // subnormal range: absolute
			if math.Abs(got-want) > 1e-44 {
				t.Fatalf("exp32(%v) = %g, want %g", x, got, want)
			}
			continue
		}
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Errorf("exp32 relative error %g", worst)
	}
	for _, x := range []float32{-1e6, -20, -1e-8, 0, 1e-8, 20, 1e6} {
		got, want := float64(sigmoid32(x)), 1/(1+math.Exp(-float64(x)))
		if math.Abs(got-want) > 1e-7*math.Max(want, 1e-30) && math.Abs(got-want) > 1e-38 {
			t.Errorf("sigmoid32(%v) = %g, want %g", x, got, want)
		}
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Error("exp32(NaN) is not NaN")
	}
}

// TestExpSlice checks the vector exp and sigmoid against math.Exp.
func TestExpSlice(t *testing.T) {
	var src []float32
	for x := float32(-120); x < 100; x += 0.0731 {
		src = append(src, x)
	}
	for _, sig := range []bool{false, true} {
		dst := make([]float32, len(src))
		expSlice(dst, src, sig)
		for i, x := range src {
			want := math.Exp(float64(x))
			if sig {
				want = 1 / (1 + math.Exp(-float64(x)))
			}
			got := float64(dst[i])
			switch {
			case !sig && want > math.MaxFloat32:
				if !math.IsInf(got, 1) {
					t.Errorf("exp(%v) = %g, want +Inf", x, got)
				}
			case !sig && want < 1e-37: // subnormal results: absolute error
				if math.Abs(got-want) > 1e-44 {
					t.Errorf("exp(%v) = %g, want %g", x, got, want)
				}
			default:
				if math.Abs(got-want) > 3e-7*want+1e-38 {
					t.Fatalf("sigmoid %v: f(%v) = %g, want %g", sig, x, got, want)
				}
			}
		}
	}
}

package engine

import (
	"math/rand"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// naiveMatMul is the reference: C = A·B for row-major m×k and k×n.
func naiveMatMul(a, b []float32, m, k, n int) []float32 {
	c := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			c[i*n+j] = float32(s)
		}
	}
	return c
}

// TestMatMulSizes checks MatMul and Gemm (all transposes, with and without packing B) against a
// naive product, including batched broadcasting.
func TestMatMulSizes(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 7}, {37, 300, 250}, {64, 17, 24}, {5, 0, 3}} {
		m, k, n := sz[0], sz[1], sz[2]
		a, b := randFloats(rng, m*k), randFloats(rng, k*n)
		want := naiveMatMul(a, b, m, k, n)
		mm := newIRModel(13).input("a", int64(m), int64(k)).input("b", int64(k), int64(n)).
			node("MatMul", []string{"a", "b"}, []string{"y"}, nil).output("y")
		for _, threads := range []int{1, 2} {
			p, err := Compile(mm, Options{Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.RunSlice(&Tensor{Shape: []int{m, k}, Data: a}, &Tensor{Shape: []int{k, n}, Data: b})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(got[0].Data, want); d > 1e-3 {
				t.Errorf("MatMul %v threads %d: max diff %g", sz, threads, d)
			}
			p.Close()
		}
		// Gemm with transposed operands and a constant B, alpha, beta and a row C
		at := make([]float32, m*k)
		transpose2D(at, a, m, k)
		bt := make([]float32, k*n)
		transpose2D(bt, b, k, n)
		cRow := randFloats(rng, n)
		gm := newIRModel(13).input("at", int64(k), int64(m)).init("bt", []int64{int64(n), int64(k)}, bt).
			init("c", []int64{int64(n)}, cRow).
			node("Gemm", []string{"at", "bt", "c"}, []string{"y"}, map[string]*onnx.Attr{
				"transA": {Kind: onnx.AttrInt, I: 1}, "transB": {Kind: onnx.AttrInt, I: 1},
				"alpha": {Kind: onnx.AttrFloat, F: 0.5}, "beta": {Kind: onnx.AttrFloat, F: 2}}).output("y")
		p, err := Compile(gm, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.RunSlice(&Tensor{Shape: []int{k, m}, Data: at})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				w := 0.5*want[i*n+j] + 2*cRow[j]
				if d := got[0].Data[i*n+j] - w; d > 1e-3 || d < -1e-3 {
					t.Fatalf("Gemm %v: [%d,%d] = %v, want %v", sz, i, j, got[0].Data[i*n+j], w)
				}
			}
		}
		p.Close()
	}
	// batched, B broadcast over the batch
	a, b := randFloats(rng, 3*4*5), randFloats(rng, 5*6)
	bm := newIRModel(13).input("a", 3, 4, 5).input("b", 5, 6).node("MatMul", []string{"a", "b"}, []string{"y"}, nil).output("y")
	p, err := Compile(bm, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, err := p.RunSlice(&Tensor{Shape: []int{3, 4, 5}, Data: a}, &Tensor{Shape: []int{5, 6}, Data: b})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if d := maxDiff(got[0].Data[i*24:(i+1)*24], naiveMatMul(a[i*20:(i+1)*20], b, 4, 5, 6)); d > 1e-4 {
			t.Errorf("batch %d differs by %g", i, d)
		}
	}
}

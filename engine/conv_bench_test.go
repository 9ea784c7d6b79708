package engine

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// convLayers are ResNet-8's 3×3 convs: channels in, out, input size, stride.
var convLayers = [][4]int{{16, 16, 28, 1}, {16, 32, 28, 2}, {32, 32, 14, 1}, {64, 64, 7, 1}}

// BenchmarkConv measures single conv layers (batch 32) on one and two threads.
func BenchmarkConv(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	for _, l := range convLayers {
		cin, cout, hw, s := l[0], l[1], l[2], l[3]
		m := newIRModel(13).input("x", -1, int64(cin), int64(hw), int64(hw)).
			init("w", []int64{int64(cout), int64(cin), 3, 3}, randFloats(rng, cout*cin*9)).
			node("Conv", []string{"x", "w"}, []string{"y"}, map[string]*onnx.Attr{
				"pads":    {Kind: onnx.AttrInts, Ints: []int64{1, 1, 1, 1}},
				"strides": {Kind: onnx.AttrInts, Ints: []int64{int64(s), int64(s)}}}).output("y")
		for _, threads := range []int{1, 2} {
			p, err := Compile(m, Options{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			x := &Tensor{Shape: []int{32, cin, hw, hw}, Data: randFloats(rng, 32*cin*hw*hw)}
			oh := (hw-1)/s + 1
			flops := 2 * float64(32*cout*oh*oh*cin*9)
			b.Run(fmt.Sprintf("%dx%dx%d-s%d/t%d", cin, cout, hw, s, threads), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := p.RunSlice(x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			p.Close()
		}
	}
}

// BenchmarkKernelPeak runs the segment micro-kernel on data in L1: the ceiling for convs.
func BenchmarkKernelPeak(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	const k = 144
	a := randSlice(rng, k*mr)
	src := randSlice(rng, 4096+slack)
	offs := make([]int32, k)
	for i := range offs {
		offs[i] = int32(i * 9 % 2048)
	}
	c := make([]float32, 4*64+slack)
	bias := make([]float32, mr)
	p := segArgs{a: &a[0], offs: &offs[0], k: k, ldc: 64, bias: &bias[0], lo: negInf, hi: posInf, mrows: 4}
	for v := 0; v < 3; v++ {
		p.b[v], p.c[v], p.n[v] = &src[v*8], &c[v*8], 8
	}
	for i := 0; i < b.N; i++ {
		kernSeg(&p)
	}
	b.ReportMetric(2*float64(k*96)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

package engine

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

// naiveConv2D is the reference convolution (NCHW, explicit pads).
func naiveConv2D(x []float32, n, c, h, w int, wt []float32, m, kh, kw int, b []float32,
	sh, sw, dh, dw, pt, pl, pb, pr, group int) ([]float32, int, int) {
	oh := (h+pt+pb-(kh-1)*dh-1)/sh + 1
	ow := (w+pl+pr-(kw-1)*dw-1)/sw + 1
	cg, mg := c/group, m/group
	y := make([]float32, n*m*oh*ow)
	for in := 0; in < n; in++ {
		for om := 0; om < m; om++ {
			g := om / mg
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var s float64
					if b != nil {
						s = float64(b[om])
					}
					for ic := 0; ic < cg; ic++ {
						for ky := 0; ky < kh; ky++ {
							iy := oy*sh - pt + ky*dh
							if iy < 0 || iy >= h {
								continue
							}
							for kx := 0; kx < kw; kx++ {
								ix := ox*sw - pl + kx*dw
								if ix < 0 || ix >= w {
									continue
								}
								s += float64(x[((in*c+g*cg+ic)*h+iy)*w+ix]) * float64(wt[((om*cg+ic)*kh+ky)*kw+kx])
							}
						}
					}
					y[((in*m+om)*oh+oy)*ow+ox] = float32(s)
				}
			}
		}
	}
	return y, oh, ow
}

// TestConvGeometries checks Conv against the naive reference over random shapes, strides,
// dilations, pads, groups (grouped and depthwise), batch sizes and thread counts, with constant
// and run-time weights, and fused with a residual Add and Relu.
func TestConvGeometries(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for trial := 0; trial < 150; trial++ {
		group := []int{1, 1, 2, 3}[rng.Intn(4)]
		cg := 1 + rng.Intn(4)
		mg := 1 + rng.Intn(6)
		depthwise := rng.Intn(4) == 0
		if depthwise {
			group, cg = 2+rng.Intn(5), 1
		}
		c, m := cg*group, mg*group
		n := 1 + rng.Intn(5)
		kh, kw := 1+rng.Intn(3), 1+rng.Intn(3)
		sh, sw := 1+rng.Intn(2), 1+rng.Intn(3)
		dh, dw := 1+rng.Intn(2), 1+rng.Intn(2)
		pt, pl, pb, pr := rng.Intn(3), rng.Intn(3), rng.Intn(3), rng.Intn(2)
		h := (kh-1)*dh + 1 + rng.Intn(12)
		w := (kw-1)*dw + 1 + rng.Intn(30)
		x, wt, b := randFloats(rng, n*c*h*w), randFloats(rng, m*cg*kh*kw), randFloats(rng, m)
		want, oh, ow := naiveConv2D(x, n, c, h, w, wt, m, kh, kw, b, sh, sw, dh, dw, pt, pl, pb, pr, group)
		attrs := map[string]*onnx.Attr{
			"pads":      {Kind: onnx.AttrInts, Ints: []int64{int64(pt), int64(pl), int64(pb), int64(pr)}},
			"strides":   {Kind: onnx.AttrInts, Ints: []int64{int64(sh), int64(sw)}},
			"dilations": {Kind: onnx.AttrInts, Ints: []int64{int64(dh), int64(dw)}},
			"group":     {Kind: onnx.AttrInt, I: int64(group)},
		}
		constW := trial%3 != 0
		fuse := trial%2 == 0
		bld := newIRModel(13).input("x", -1, int64(c), int64(h), int64(w))
		if constW {
			bld.init("w", []int64{int64(m), int64(cg), int64(kh), int64(kw)}, wt)
		} else {
			bld.input("w", int64(m), int64(cg), int64(kh), int64(kw))
		}
		bld.init("b", []int64{int64(m)}, b).node("Conv", []string{"x", "w", "b"}, []string{"conv"}, attrs)
		res := randFloats(rng, n*m*oh*ow)
		if fuse {
			bld.input("r", -1, int64(m), int64(oh), int64(ow)).
				node("Add", []string{"conv", "r"}, []string{"sum"}, nil).node("Relu", []string{"sum"}, []string{"y"}, nil)
			for i := range want {
				want[i] = max(0, want[i]+res[i])
			}
		} else {
			bld.node("Identity", []string{"conv"}, []string{"y"}, nil)
		}
		model := bld.output("y")
		name := fmt.Sprintf("trial %d: n%d c%d m%d g%d %dx%d k%dx%d s%dx%d d%dx%d p%d,%d,%d,%d const %v fused %v",
			trial, n, c, m, group, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, constW, fuse)
		for _, threads := range []int{1, 2} {
			p, err := Compile(model, Options{Threads: threads})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			ins := []*Tensor{{Shape: []int{n, c, h, w}, Data: x}}
			if !constW {
				ins = append(ins, &Tensor{Shape: []int{m, cg, kh, kw}, Data: wt})
			}
			if fuse {
				ins = append(ins, &Tensor{Shape: []int{n, m, oh, ow}, Data: res})
			}
			for run := 0; run < 2; run++ { // the dynamic first run, then the planned one
				got, err := p.RunSlice(ins...)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !slices.Equal(got[0].Shape, []int{n, m, oh, ow}) {
					t.Fatalf("%s: shape %v, want %v", name, got[0].Shape, []int{n, m, oh, ow})
				}
				if d := maxDiff(got[0].Data, want); d > 1e-4 {
					t.Fatalf("%s threads %d run %d: max diff %g", name, threads, run, d)
				}
			}
			p.Close()
		}
	}
}

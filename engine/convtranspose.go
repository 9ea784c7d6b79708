package engine

import (
	"fmt"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// convTransposeOp is ConvTranspose (1-D and 2-D): per image and group, cols = Wᵀ·X by the GEMM
// kernel, then scattered into the output (col2im).
type convTransposeOp struct {
	group int
	win   onnx.Window // kernel_shape, when absent, comes from W
	offs  []int32
	t     gemmTask
}

func buildConvTranspose(b *builder) (op, error) {
	o := &convTransposeOp{group: int(b.n.Int("group", 1)), win: onnx.NodeWindow(b.n, nil)}
	if o.group < 1 {
		return nil, fmt.Errorf("group %d", o.group)
	}
	return o, nil
}

// ctGeom is a ConvTranspose's geometry: 2-D, with 1-D as height 1.
type ctGeom struct {
	n, c, h, w, m, mg, cg, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow int
	rank                                                          int
}

func (o *convTransposeOp) geometry(in []*Tensor) (ctGeom, error) {
	var g ctGeom
	if len(in) < 2 || in[0] == nil || in[1] == nil || in[0].IsInt() || in[1].IsInt() {
		return g, fmt.Errorf("wants float X and W")
	}
	x, w := in[0].Shape, in[1].Shape
	r := len(x) - 2
	if r < 1 || r > 2 || len(w) != r+2 {
		return g, fmt.Errorf("only 1-D and 2-D are supported: X %v, W %v", x, w)
	}
	g.rank = r
	if x[1] != w[0] || x[1]%o.group != 0 {
		return g, fmt.Errorf("X %v and W %v do not match with group %d", x, w, o.group)
	}
	g.n, g.c, g.cg = x[0], x[1], x[1]/o.group
	g.mg = w[1]
	g.m = g.mg * o.group
	win := o.win
	for _, v := range [][]int64{win.Strides, win.Dilations, win.OutputPadding, win.Kernel, win.OutputShape} {
		if v != nil && len(v) != r {
			return g, fmt.Errorf("attribute %v for %d spatial dims", v, r)
		}
	}
	if win.Kernel != nil && !slices.Equal(ints(win.Kernel), w[2:]) {
		return g, fmt.Errorf("kernel_shape %v does not match W %v", win.Kernel, w)
	}
	win.Kernel = toInt64s(w[2:])
	out, pads, _, err := win.TransposedOutput(toInt64s(x[2:]))
	if err != nil {
		return g, err
	}
	in2, k2, s2, d2, pb2, out2 := x[2:], w[2:], make([]int, r), make([]int, r), ints(pads), ints(out)
	for i := range s2 {
		s2[i], d2[i] = int(win.Stride(i)), int(win.Dilation(i))
	}
	if r == 1 {
		g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.oh, g.ow = 1, in2[0], 1, k2[0], 1, s2[0], 1, d2[0], 0, pb2[0], 1, out2[0]
	} else {
		g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.oh, g.ow = in2[0], in2[1], k2[0], k2[1], s2[0], s2[1], d2[0], d2[1], pb2[0], pb2[1], out2[0], out2[1]
	}
	return g, nil
}

func (o *convTransposeOp) infer(in []*Tensor) ([]spec, error) {
	g, err := o.geometry(in)
	if err != nil {
		return nil, err
	}
	if g.rank == 1 {
		return floatSpec([]int{g.n, g.m, g.ow}), nil
	}
	return floatSpec([]int{g.n, g.m, g.oh, g.ow}), nil
}

func (o *convTransposeOp) scratch(in []*Tensor, _ int) (int, int) {
	g, err := o.geometry(in)
	if err != nil {
		return 0, 0
	}
	rows := g.mg * g.kh * g.kw
	return 0, packedASize(rows, g.cg) + roundUp(rows, mr) + rows*g.h*g.w
}

func (o *convTransposeOp) run(c *ctx, in, out []*Tensor) error {
	g, err := o.geometry(in)
	if err != nil {
		return err
	}
	x, w, y := in[0], in[1], out[0]
	rows := g.mg * g.kh * g.kw
	hw := g.h * g.w
	sh := c.shared
	pa := sh[:packedASize(rows, g.cg)]
	bias := sh[len(pa) : len(pa)+roundUp(rows, mr)]
	clear(bias)
	cols := sh[len(pa)+len(bias) : len(pa)+len(bias)+rows*hw]
	o.offs = rowOffsets(o.offs, g.cg, hw)
	var b []float32
	if len(in) > 2 && in[2] != nil {
		if in[2].Len() != g.m {
			return fmt.Errorf("B has %d values for %d channels", in[2].Len(), g.m)
		}
		b = in[2].Data
	}
	oplane := g.oh * g.ow
	for n := 0; n < g.n; n++ {
		for ch := 0; ch < g.m; ch++ {
			v := float32(0)
			if b != nil {
				v = b[ch]
			}
			p := y.Data[(n*g.m+ch)*oplane : (n*g.m+ch+1)*oplane]
			for i := range p {
				p[i] = v
			}
		}
	}
	for gi := 0; gi < o.group; gi++ {
		// A = W_gᵀ: rows (m, ky, kx), columns c
		packATrans(pa, w.Data[gi*g.cg*rows:], rows, g.cg, rows)
		for n := 0; n < g.n; n++ {
			o.t = gemmTask{pa: pa, m: rows, k: g.cg, n: hw, b: x.Data, boff: (n*g.c + gi*g.cg) * hw, offs: o.offs, y: cols, bias: bias}
			c.runGemm(&o.t)
			// col2im
			for m := 0; m < g.mg; m++ {
				dst := y.Data[(n*g.m+gi*g.mg+m)*oplane:]
				for ky := 0; ky < g.kh; ky++ {
					for kx := 0; kx < g.kw; kx++ {
						src := cols[((m*g.kh+ky)*g.kw+kx)*hw:]
						for iy := 0; iy < g.h; iy++ {
							oy := iy*g.sh - g.pt + ky*g.dh
							if oy < 0 || oy >= g.oh {
								continue
							}
							for ix := 0; ix < g.w; ix++ {
								ox := ix*g.sw - g.pl + kx*g.dw
								if ox >= 0 && ox < g.ow {
									dst[oy*g.ow+ox] += src[iy*g.w+ix]
								}
							}
						}
					}
				}
			}
		}
	}
	o.t = gemmTask{}
	return nil
}

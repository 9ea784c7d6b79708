package engine

import (
	"fmt"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// poolGrad is the backward of MaxPool (the gradient goes to the first maximum of each window,
// the element the forward picked) and AveragePool (spread over the window with the forward's
// divisor: count_include_pad counts the explicit padding, never the ceil_mode overhang).
type poolGrad struct {
	max        bool
	win        window
	includePad bool
	// geometry, padded to 3 spatial dims
	in, out, padB, padE, k, s, d [3]int
	inPl, outPl                  int
	shape                        []int
	// run state
	x, y, dy, dx []float32
	acc          bool
	rt           rangeTask
}

func newPoolGrad(n *onnx.Node) (gradOp, []bool, bool, error) {
	g := &poolGrad{max: n.OpType == "MaxPool", includePad: n.Int("count_include_pad", 0) != 0}
	g.win = nodeWindow(n)
	if g.win.kernel == nil {
		return nil, nil, false, fmt.Errorf("kernel_shape is required")
	}
	g.rt.fn = g.planes
	return g, []bool{true}, false, nil
}

func (g *poolGrad) prepare(_ *ctx, in, _ []*Tensor) error {
	x := in[0]
	if slices.Equal(g.shape, x.Shape) {
		return nil
	}
	r := len(x.Shape) - 2
	if r < 1 || r > 3 {
		return fmt.Errorf("input %v: 1 to 3 spatial dims", x.Shape)
	}
	outD, padB, padE, err := g.win.outDims(x.Shape[2:])
	if err != nil {
		return err
	}
	g.inPl, g.outPl = 1, 1
	for i := 0; i < 3; i++ {
		g.in[i], g.out[i], g.k[i], g.s[i], g.d[i], g.padB[i], g.padE[i] = 1, 1, 1, 1, 1, 0, 0
	}
	for i := 0; i < r; i++ {
		j := 3 - r + i
		g.in[j], g.out[j], g.padB[j], g.padE[j], g.k[j] = x.Shape[2+i], outD[i], padB[i], padE[i], g.win.kernel[i]
		if i < len(g.win.strides) {
			g.s[j] = g.win.strides[i]
		}
		if i < len(g.win.dilations) {
			g.d[j] = g.win.dilations[i]
		}
		g.inPl *= g.in[j]
		g.outPl *= g.out[j]
	}
	g.shape = append(g.shape[:0], x.Shape...)
	return nil
}

func (g *poolGrad) backward(c *ctx, a *gradArgs) error {
	if a.din[0] == nil || a.dout[0] == nil {
		return nil
	}
	if err := g.prepare(c, a.in, a.out); err != nil { // another input shape ran since
		return err
	}
	g.x, g.y, g.dy, g.dx, g.acc = a.in[0].Data, a.out[0].Data, a.dout[0].Data, a.din[0].Data, a.acc[0]
	planes := a.in[0].Shape[0] * a.in[0].Shape[1]
	c.parallelRange(planes, planes*g.outPl*g.k[0]*g.k[1]*g.k[2], &g.rt)
	g.x, g.y, g.dy, g.dx = nil, nil, nil, nil
	return nil
}

func (g *poolGrad) planes(lo, hi int) {
	for pl := lo; pl < hi; pl++ {
		x := g.x[pl*g.inPl : (pl+1)*g.inPl]
		dx := g.dx[pl*g.inPl : (pl+1)*g.inPl]
		y := g.y[pl*g.outPl : (pl+1)*g.outPl]
		dy := g.dy[pl*g.outPl : (pl+1)*g.outPl]
		if !g.acc {
			clear(dx)
		}
		i := 0
		for od := 0; od < g.out[0]; od++ {
			for oh := 0; oh < g.out[1]; oh++ {
				for ow := 0; ow < g.out[2]; ow++ {
					d0, h0, w0 := od*g.s[0]-g.padB[0], oh*g.s[1]-g.padB[1], ow*g.s[2]-g.padB[2]
					if g.max {
						best := y[i]
						done := false
						for kd := 0; kd < g.k[0] && !done; kd++ {
							z := d0 + kd*g.d[0]
							if z < 0 || z >= g.in[0] {
								continue
							}
							for kh := 0; kh < g.k[1] && !done; kh++ {
								yy := h0 + kh*g.d[1]
								if yy < 0 || yy >= g.in[1] {
									continue
								}
								for kw := 0; kw < g.k[2]; kw++ {
									xx := w0 + kw*g.d[2]
									if xx < 0 || xx >= g.in[2] {
										continue
									}
									at := (z*g.in[1]+yy)*g.in[2] + xx
									if x[at] == best {
										dx[at] += dy[i]
										done = true
										break
									}
								}
							}
						}
						i++
						continue
					}
					count, padded := 0, 0
					for kd := 0; kd < g.k[0]; kd++ {
						z := d0 + kd*g.d[0]
						for kh := 0; kh < g.k[1]; kh++ {
							yy := h0 + kh*g.d[1]
							for kw := 0; kw < g.k[2]; kw++ {
								xx := w0 + kw*g.d[2]
								if z < 0 || z >= g.in[0] || yy < 0 || yy >= g.in[1] || xx < 0 || xx >= g.in[2] {
									if z < g.in[0]+g.padE[0] && yy < g.in[1]+g.padE[1] && xx < g.in[2]+g.padE[2] {
										padded++
									}
									continue
								}
								count++
							}
						}
					}
					n := count
					if g.includePad {
						n += padded
					}
					if n == 0 {
						i++
						continue
					}
					v := dy[i] / float32(n)
					for kd := 0; kd < g.k[0]; kd++ {
						z := d0 + kd*g.d[0]
						if z < 0 || z >= g.in[0] {
							continue
						}
						for kh := 0; kh < g.k[1]; kh++ {
							yy := h0 + kh*g.d[1]
							if yy < 0 || yy >= g.in[1] {
								continue
							}
							for kw := 0; kw < g.k[2]; kw++ {
								xx := w0 + kw*g.d[2]
								if xx >= 0 && xx < g.in[2] {
									dx[(z*g.in[1]+yy)*g.in[2]+xx] += v
								}
							}
						}
					}
					i++
				}
			}
		}
	}
}

// globalPoolGrad is the backward of GlobalAveragePool (dy/plane everywhere) and GlobalMaxPool
// (dy to the first maximum).
type globalPoolGrad struct {
	max bool
	// run state
	x, y, dy, dx []float32
	pl           int
	acc          bool
	rt           rangeTask
}

func (g *globalPoolGrad) backward(c *ctx, a *gradArgs) error {
	if a.din[0] == nil || a.dout[0] == nil {
		return nil
	}
	x := a.in[0]
	g.x, g.y, g.dy, g.dx, g.acc = x.Data, a.out[0].Data, a.dout[0].Data, a.din[0].Data, a.acc[0]
	g.pl = numel(x.Shape[2:])
	if g.rt.fn == nil {
		g.rt.fn = g.planes
	}
	c.parallelRange(len(g.dy), x.Len(), &g.rt)
	g.x, g.y, g.dy, g.dx = nil, nil, nil, nil
	return nil
}

func (g *globalPoolGrad) planes(lo, hi int) {
	for i := lo; i < hi; i++ {
		dx := g.dx[i*g.pl : (i+1)*g.pl]
		if g.max {
			x := g.x[i*g.pl : (i+1)*g.pl]
			if !g.acc {
				clear(dx)
			}
			for j, v := range x {
				if v == g.y[i] {
					dx[j] += g.dy[i]
					break
				}
			}
			continue
		}
		v := g.dy[i] / float32(g.pl)
		if g.acc {
			for j := range dx {
				dx[j] += v
			}
		} else {
			for j := range dx {
				dx[j] = v
			}
		}
	}
}

package engine

import (
	"fmt"
	"math"
	"slices"
)

// poolOp is MaxPool, AveragePool or LpPool over 1-D, 2-D or 3-D windows.
type poolOp struct {
	kind         string
	win          window
	includePad   bool // AveragePool count_include_pad
	storageOrder int  // MaxPool Indices: 0 row major, 1 column major
	p            int  // LpPool
	// run state
	x, y, idx *Tensor
	g         poolGeom
	gShape    []int // the input shape g was made for
	rt        rangeTask
}

type poolGeom struct {
	in, out, padB, padEnd, k, s, d [3]int // padded to 3 spatial dims (leading 1s)
	inPlane, outPlane              int
}

func buildPool(b *builder) (op, error) {
	n := b.n
	o := &poolOp{kind: n.OpType, includePad: n.Int("count_include_pad", 0) != 0,
		storageOrder: int(n.Int("storage_order", 0)), p: int(n.Int("p", 2))}
	o.win = nodeWindow(n)
	if o.win.kernel == nil {
		return nil, fmt.Errorf("kernel_shape is required")
	}
	if o.kind != "MaxPool" && len(n.Outputs) > 1 {
		return nil, fmt.Errorf("only MaxPool has a second output")
	}
	o.rt.fn = o.apply
	return o, nil
}

func (o *poolOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 1 || in[0] == nil || (in[0].IsInt() && o.kind != "MaxPool") {
		return nil, fmt.Errorf("wants one float input")
	}
	x := in[0]
	r := len(x.Shape) - 2
	if r < 1 || r > 3 || len(o.win.kernel) != r {
		return nil, fmt.Errorf("input %v does not fit kernel_shape %v (1 to 3 spatial dims)", x.Shape, o.win.kernel)
	}
	out, _, _, err := o.win.outDims(x.Shape[2:])
	if err != nil {
		return nil, err
	}
	shape := append([]int{x.Shape[0], x.Shape[1]}, out...)
	return []spec{{shape: shape, isInt: x.IsInt()}, {shape: shape, isInt: true}}, nil
}

func (o *poolOp) run(c *ctx, in, out []*Tensor) error {
	x := in[0]
	if x.IsInt() {
		// integer MaxPool (uint8 images): pool a float copy, values up to 2^24 are exact
		xf := &Tensor{Shape: x.Shape, Data: make([]float32, len(x.Ints))}
		for i, v := range x.Ints {
			xf.Data[i] = float32(v)
		}
		yf := &Tensor{Shape: out[0].Shape, Data: make([]float32, len(out[0].Ints))}
		outs := append([]*Tensor{yf}, out[1:]...)
		if err := o.run(c, []*Tensor{xf}, outs); err != nil {
			return err
		}
		for i, v := range yf.Data {
			out[0].Ints[i] = int64(v)
		}
		return nil
	}
	if !slices.Equal(o.gShape, x.Shape) {
		if err := o.geometry(x); err != nil {
			return err
		}
	}
	o.x, o.y, o.idx = x, out[0], nil
	if len(out) > 1 {
		o.idx = out[1]
	}
	planes := x.Shape[0] * x.Shape[1]
	g := &o.g
	c.parallelRange(planes, planes*g.outPlane*g.k[0]*g.k[1]*g.k[2], &o.rt)
	o.x, o.y, o.idx = nil, nil, nil
	return nil
}

// geometry computes the pooling geometry for input x.
func (o *poolOp) geometry(x *Tensor) error {
	r := len(x.Shape) - 2
	outD, padB, padE, err := o.win.outDims(x.Shape[2:])
	if err != nil {
		return err
	}
	g := poolGeom{inPlane: 1, outPlane: 1}
	for i := 0; i < 3; i++ {
		g.in[i], g.out[i], g.k[i], g.s[i], g.d[i] = 1, 1, 1, 1, 1
	}
	for i := 0; i < r; i++ {
		j := 3 - r + i
		g.in[j], g.out[j], g.padB[j], g.padEnd[j], g.k[j] = x.Shape[2+i], outD[i], padB[i], padE[i], o.win.kernel[i]
		g.s[j], g.d[j] = o.win.stride(i), o.win.dilation(i)
		g.inPlane *= g.in[j]
		g.outPlane *= g.out[j]
	}
	o.g, o.gShape = g, append(o.gShape[:0], x.Shape...)
	return nil
}

func (o *poolOp) apply(lo, hi int) {
	g := &o.g
	isMax, isAvg := o.kind == "MaxPool", o.kind == "AveragePool"
	if g.in[0] == 1 && g.k[0] == 1 && g.d[1] == 1 && g.d[2] == 1 && o.idx == nil && (isMax || isAvg) {
		o.apply2D(lo, hi, isMax)
		return
	}
	for pl := lo; pl < hi; pl++ {
		src := o.x.Data[pl*g.inPlane : (pl+1)*g.inPlane]
		dst := o.y.Data[pl*g.outPlane : (pl+1)*g.outPlane]
		i := 0
		for od := 0; od < g.out[0]; od++ {
			for oh := 0; oh < g.out[1]; oh++ {
				for ow := 0; ow < g.out[2]; ow++ {
					d0, h0, w0 := od*g.s[0]-g.padB[0], oh*g.s[1]-g.padB[1], ow*g.s[2]-g.padB[2]
					best, bestAt := float32(math.Inf(-1)), -1
					var sum float64
					count, padded := 0, 0
					for kd := 0; kd < g.k[0]; kd++ {
						z := d0 + kd*g.d[0]
						for kh := 0; kh < g.k[1]; kh++ {
							y := h0 + kh*g.d[1]
							for kw := 0; kw < g.k[2]; kw++ {
								xx := w0 + kw*g.d[2]
								if z < 0 || z >= g.in[0] || y < 0 || y >= g.in[1] || xx < 0 || xx >= g.in[2] {
									// positions in the explicit padding count for count_include_pad;
									// positions past it (ceil_mode) never do
									if z < g.in[0]+g.padEnd[0] && y < g.in[1]+g.padEnd[1] && xx < g.in[2]+g.padEnd[2] {
										padded++
									}
									continue
								}
								at := (z*g.in[1]+y)*g.in[2] + xx
								v := src[at]
								switch {
								case isMax:
									if v > best || bestAt < 0 {
										best, bestAt = v, at
									}
								case isAvg:
									sum += float64(v)
								default:
									sum += math.Pow(math.Abs(float64(v)), float64(o.p))
								}
								count++
							}
						}
					}
					switch {
					case isMax:
						dst[i] = best
						if o.idx != nil {
							o.idx.Ints[pl*g.outPlane+i] = int64(o.index(pl, bestAt))
						}
					case isAvg:
						n := count
						if o.includePad {
							n += padded
						}
						if n > 0 {
							dst[i] = float32(sum / float64(n))
						} else {
							dst[i] = 0
						}
					default:
						dst[i] = float32(math.Pow(sum, 1/float64(o.p)))
					}
					i++
				}
			}
		}
	}
}

// apply2D is the common case: 2-D windows without dilation, no Indices output. Each output
// clips its window to the input once, then scans it with plain loops.
func (o *poolOp) apply2D(lo, hi int, isMax bool) {
	g := &o.g
	h, w := g.in[1], g.in[2]
	oh, ow := g.out[1], g.out[2]
	kh, kw, sh, sw := g.k[1], g.k[2], g.s[1], g.s[2]
	pt, pl := g.padB[1], g.padB[2]
	hLimit, wLimit := h+g.padEnd[1], w+g.padEnd[2] // window ends past these are ceil_mode overhang
	if isMax && w <= maxPoolRow && kw <= w {
		o.max2D(lo, hi)
		return
	}
	for pl0 := lo; pl0 < hi; pl0++ {
		src := o.x.Data[pl0*g.inPlane : (pl0+1)*g.inPlane]
		dst := o.y.Data[pl0*g.outPlane : (pl0+1)*g.outPlane]
		for y := 0; y < oh; y++ {
			y0 := y*sh - pt
			y1 := y0 + kh
			ya, yb := max(y0, 0), min(y1, h)
			for x := 0; x < ow; x++ {
				x0 := x*sw - pl
				x1 := x0 + kw
				xa, xb := max(x0, 0), min(x1, w)
				if isMax {
					m := float32(math.Inf(-1))
					for yy := ya; yy < yb; yy++ {
						for _, v := range src[yy*w+xa : yy*w+xb] {
							if v > m {
								m = v
							}
						}
					}
					dst[y*ow+x] = m
					continue
				}
				var s float32
				for yy := ya; yy < yb; yy++ {
					for _, v := range src[yy*w+xa : yy*w+xb] {
						s += v
					}
				}
				n := (yb - ya) * (xb - xa)
				if o.includePad {
					n = (min(y1, hLimit) - y0) * (min(x1, wLimit) - x0)
				}
				if n > 0 {
					dst[y*ow+x] = s / float32(n)
				} else {
					dst[y*ow+x] = 0
				}
			}
		}
	}
}

// maxPoolRow is the widest input row max2D takes (its column maxima live on the stack).
const maxPoolRow = 1024

// max2D is apply2D's MaxPool without indices, separably: per output row, the column maxima over
// the window's input rows, then the maxima of kw neighbours of those. Max is associative, so the
// result is the window maximum as apply2D's direct loop finds it (NaN aside: Go's max keeps a NaN
// where the loop skips it; MaxPool inputs with NaNs have no defined order in ONNX either).
func (o *poolOp) max2D(lo, hi int) {
	g := &o.g
	h, w := g.in[1], g.in[2]
	oh, ow := g.out[1], g.out[2]
	kh, kw, sh, sw := g.k[1], g.k[2], g.s[1], g.s[2]
	pt, pl := g.padB[1], g.padB[2]
	var colBuf [maxPoolRow]float32
	cm := colBuf[:w]
	for pl0 := lo; pl0 < hi; pl0++ {
		src := o.x.Data[pl0*g.inPlane : (pl0+1)*g.inPlane]
		dst := o.y.Data[pl0*g.outPlane : (pl0+1)*g.outPlane]
		for y := 0; y < oh; y++ {
			y0 := y*sh - pt
			ya, yb := max(y0, 0), min(y0+kh, h)
			out := dst[y*ow : (y+1)*ow]
			if ya >= yb { // a window wholly in the padding
				for x := range out {
					out[x] = negInf
				}
				continue
			}
			copy(cm, src[ya*w:ya*w+w])
			for yy := ya + 1; yy < yb; yy++ {
				row := src[yy*w : yy*w+w]
				for i, v := range row {
					cm[i] = max(cm[i], v)
				}
			}
			for x := range out {
				x0 := x*sw - pl
				xa, xb := max(x0, 0), min(x0+kw, w)
				m := negInf
				if xa < xb {
					m = cm[xa]
					for _, v := range cm[xa+1 : xb] {
						m = max(m, v)
					}
				}
				out[x] = m
			}
		}
	}
}

// index is MaxPool's Indices value for an element of plane pl.
func (o *poolOp) index(pl, at int) int {
	g := &o.g
	if o.storageOrder == 1 && g.in[0] == 1 {
		h, w := at/g.in[2], at%g.in[2]
		return pl*g.inPlane + w*g.in[1] + h
	}
	return pl*g.inPlane + at
}

// globalPoolOp is GlobalAveragePool, GlobalMaxPool or GlobalLpPool.
type globalPoolOp struct {
	max, lp bool
	p       int
}

func (o *globalPoolOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 1 || in[0] == nil || in[0].IsInt() || len(in[0].Shape) < 3 {
		return nil, fmt.Errorf("wants one float input of rank ≥ 3")
	}
	shape := append([]int{}, in[0].Shape...)
	for i := 2; i < len(shape); i++ {
		shape[i] = 1
	}
	return floatSpec(shape), nil
}

func (o *globalPoolOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	plane := numel(x.Shape[2:])
	for i := range y.Data {
		src := x.Data[i*plane : (i+1)*plane]
		switch {
		case o.max:
			m := float32(math.Inf(-1))
			for _, v := range src {
				m = max(m, v)
			}
			y.Data[i] = m
		case o.lp:
			var s float64
			for _, v := range src {
				s += math.Pow(math.Abs(float64(v)), float64(o.p))
			}
			y.Data[i] = float32(math.Pow(s, 1/float64(o.p)))
		default:
			var s float32
			for _, v := range src {
				s += v
			}
			y.Data[i] = s / float32(plane)
		}
	}
	return nil
}

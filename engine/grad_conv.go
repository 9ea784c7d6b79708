package engine

import (
	"fmt"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// Convolution backward.
//
// Weight gradient (dW[m][c][t] = Σ_n Σ_p dY[n][m][p] · X[n][c][p·s + t·d − pad]) runs per image on
// the GEMM micro-kernel with the packed output gradient as A (rows m, k = output positions):
//   - with few input channels per group (cg ≤ 4) B is the image unrolled to rows of
//     (c, tap) values per output position ("im2row": cheap when the row is short);
//   - otherwise the image is copied once into a zero-padded channels-last buffer, and each tap is
//     a GEMM whose B row for output position p is the cg channels at that tap's pixel: contiguous,
//     so no unrolled copy of the image is needed.
//
// Each worker accumulates the images it takes into its own buffer; the buffers are summed at the
// end. Depthwise convs use direct loops.
//
// Data gradient: a stride-1 conv's is itself a conv (of dY with the weights transposed per group
// and flipped, padded by (k−1)·d − pad), which runs on the forward conv kernel. Strided convs
// compute per image cols = Wᵀ·dY with the GEMM kernel and scatter-add them (col2im).

// cgeo is a 2-D convolution's geometry (1-D as height 1).
type cgeo struct {
	n, c, h, w, m, oh, ow  int
	kh, kw, sh, sw, dh, dw int
	pt, pl, pb, pr         int
	g, cg, mg              int
	rank                   int
}

func (g *cgeo) taps() int  { return g.kh * g.kw }
func (g *cgeo) plane() int { return g.oh * g.ow }

// convGeo computes a Conv node's geometry for input and weight shapes, as the forward does.
func convGeo(n *onnx.Node, x, w []int) (cgeo, error) {
	var g cgeo
	rank := len(x) - 2
	if rank < 1 || rank > 2 || len(w) != rank+2 {
		return g, fmt.Errorf("X %v and W %v: only 1-D and 2-D convolutions have a backward", x, w)
	}
	win := nodeWindow(n)
	if win.kernel == nil {
		win.kernel = w[2:]
	}
	out, pb, pe, err := win.outDims(x[2:])
	if err != nil {
		return g, err
	}
	get := func(v []int, i int) int {
		if i < len(v) {
			return v[i]
		}
		return 1
	}
	g = cgeo{rank: rank, n: x[0], c: x[1], m: w[0], cg: w[1], g: int(n.Int("group", 1))}
	if rank == 1 {
		g.h, g.w, g.kh, g.kw, g.oh, g.ow = 1, x[2], 1, w[2], 1, out[0]
		g.sh, g.sw, g.dh, g.dw = 1, get(win.strides, 0), 1, get(win.dilations, 0)
		g.pl, g.pr = pb[0], pe[0]
	} else {
		g.h, g.w, g.kh, g.kw, g.oh, g.ow = x[2], x[3], w[2], w[3], out[0], out[1]
		g.sh, g.sw, g.dh, g.dw = get(win.strides, 0), get(win.strides, 1), get(win.dilations, 0), get(win.dilations, 1)
		g.pt, g.pl, g.pb, g.pr = pb[0], pb[1], pe[0], pe[1]
	}
	if g.g < 1 || g.c != g.cg*g.g || g.m%g.g != 0 {
		return g, fmt.Errorf("X %v, W %v and group %d do not match", x, w, g.g)
	}
	g.mg = g.m / g.g
	return g, nil
}

// convGrad is Conv's backward.
type convGrad struct {
	node  *onnx.Node
	shape [2][]int // X and W shapes prepared for
	geo   cgeo
	wg    wgrad
	dg    dgrad
	dw    dwGrad
	inner *innerConv // stride-1 data gradient on the forward kernel, or nil
}

func (o *convGrad) prepare(c *ctx, in, out []*Tensor) error {
	if slices.Equal(o.shape[0], in[0].Shape) && slices.Equal(o.shape[1], in[1].Shape) {
		return nil
	}
	g, err := convGeo(o.node, in[0].Shape, in[1].Shape)
	if err != nil {
		return err
	}
	o.geo = g
	o.shape = [2][]int{append([]int{}, in[0].Shape...), append([]int{}, in[1].Shape...)}
	if isDepthwise(g.g, g.cg) {
		o.dw.setup(g)
	} else {
		o.wg.setup(g, c.threads)
	}
	o.inner = nil
	if g.sh == 1 && g.sw == 1 && (g.kh-1)*g.dh >= max(g.pt, g.pb) && (g.kw-1)*g.dw >= max(g.pl, g.pr) {
		o.inner, err = newInnerConv(g, in[1].Shape)
		if err != nil {
			return err
		}
	} else if !isDepthwise(g.g, g.cg) {
		o.dg.setup(g)
	}
	return nil
}

func (o *convGrad) gradScratch(in, out []*Tensor, threads int) (int, int) {
	g := &o.geo
	per, shared := 0, 0
	if !isDepthwise(g.g, g.cg) {
		per = o.wg.scratch()
		if o.inner == nil {
			per = max(per, o.dg.scratch())
		}
	}
	if o.inner != nil {
		p, s := o.inner.scratch(out[0].Shape, threads)
		per, shared = max(per, p), s+in[0].Len()+slack
	}
	return per, shared
}

func (o *convGrad) backward(c *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	if err := o.prepare(c, a.in, a.out); err != nil { // another input shape ran since
		return err
	}
	g := &o.geo
	x, w := a.in[0], a.in[1]
	var dB []float32
	accB := false
	if len(a.din) > 2 && a.din[2] != nil {
		dB, accB = a.din[2].Data, a.acc[2]
	}
	if dx := a.din[0]; dx != nil {
		switch {
		case o.inner != nil:
			if err := o.inner.run(c, w.Data, dy, dx, a.acc[0]); err != nil {
				return err
			}
		case isDepthwise(g.g, g.cg):
			o.dw.dataGrad(c, w.Data, dy.Data, dx.Data, a.acc[0])
		default:
			o.dg.run(c, w.Data, dy.Data, dx.Data, a.acc[0])
		}
	}
	if dW := a.din[1]; dW != nil || dB != nil {
		var dw []float32
		if dW != nil {
			dw = dW.Data
		}
		if isDepthwise(g.g, g.cg) {
			o.dw.weightGrad(c, x.Data, dy.Data, dw, dB, a.acc[1], accB)
		} else {
			o.wg.run(c, x.Data, dy.Data, dw, dB, a.acc[1], accB)
		}
	}
	return nil
}

// ---------------------------------------------------------------- weight gradient

type wgrad struct {
	geo    cgeo
	im2row bool
	k      int // im2row: values per row (cg·taps)
	hp, wp int // channels-last buffer: padded rows and columns that taps read
	offs   []int32
	// acc and accB hold one partial weight (im2row: [M][cg·taps]; else [taps][M][cg]) and bias
	// gradient per chunk of images. Chunk i is images split(n, chunks, i), whichever worker runs
	// it, and the partials are summed in chunk order: the sums do not depend on scheduling.
	acc     [][]float32
	accB    [][]float32
	zeros   []float32
	scr     [][]float32
	x, dy   []float32
	wantW   bool
	wantB   bool
	threads int
}

// minWgradChunks is the fewest chunks a batch is cut into for the weight gradient. With up to this
// many threads the chunks, and so the sums, are the same whatever --threads is: a model trained on
// 1, 2 or 4 threads has the same bytes. Each chunk costs one copy of the layer's weight gradient.
const minWgradChunks = 4

func (t *wgrad) setup(g cgeo, threads int) {
	t.geo, t.threads = g, threads
	t.im2row = g.cg <= 4
	p := g.plane()
	t.offs = make([]int32, p)
	if t.im2row {
		t.k = g.cg * g.taps()
		for i := range t.offs {
			t.offs[i] = int32(i * t.k)
		}
	} else {
		t.hp = (g.oh-1)*g.sh + (g.kh-1)*g.dh + 1
		t.wp = (g.ow-1)*g.sw + (g.kw-1)*g.dw + 1
		for oy := 0; oy < g.oh; oy++ {
			for ox := 0; ox < g.ow; ox++ {
				t.offs[oy*g.ow+ox] = int32((oy*g.sh*t.wp + ox*g.sw) * g.c)
			}
		}
	}
	size := g.m * g.cg * g.taps()
	chunks := max(threads, minWgradChunks)
	t.acc = make([][]float32, chunks)
	t.accB = make([][]float32, chunks)
	for w := range t.acc {
		t.acc[w] = newFloats(size)
		t.accB[w] = make([]float32, g.m)
	}
	t.zeros = make([]float32, roundUp(max(g.mg, g.cg*g.taps()), mr)+mr)
}

// scratch is the per-worker floats: B (unrolled rows or the channels-last image) and the packed
// output gradient of one group.
func (t *wgrad) scratch() int {
	g := &t.geo
	b := g.plane() * t.k
	if !t.im2row {
		b = t.hp * t.wp * g.c
	}
	return b + packedASize(g.mg, g.plane()) + 2*slack
}

func (t *wgrad) run(c *ctx, x, dy, dW, dB []float32, accW, accB bool) {
	g := &t.geo
	t.x, t.dy, t.wantW, t.wantB, t.scr = x, dy, dW != nil, dB != nil, c.scratch
	for w := range t.acc {
		clear(t.acc[w])
		clear(t.accB[w])
	}
	c.parallel(len(t.acc), t)
	t.x, t.dy, t.scr = nil, nil, nil
	taps := g.taps()
	if dW != nil {
		if !accW {
			clear(dW)
		}
		if t.im2row {
			for _, a := range t.acc {
				for i, v := range a[:len(dW)] {
					dW[i] += v
				}
			}
		} else {
			for _, a := range t.acc {
				for tap := 0; tap < taps; tap++ {
					for m := 0; m < g.m; m++ {
						src := a[(tap*g.m+m)*g.cg : (tap*g.m+m+1)*g.cg]
						dst := dW[m*g.cg*taps+tap:]
						for ci, v := range src {
							dst[ci*taps] += v
						}
					}
				}
			}
		}
	}
	if dB != nil {
		if !accB {
			clear(dB)
		}
		for _, a := range t.accB {
			for i, v := range a {
				dB[i] += v
			}
		}
	}
}

// do accumulates chunk i's images into chunk i's partial sums, in image order, using worker w's
// scratch.
func (t *wgrad) do(w, i int) {
	lo, hi := split(t.geo.n, len(t.acc), i)
	for n := lo; n < hi; n++ {
		t.image(w, i, n)
	}
}

// image accumulates image n into chunk i's partial sums.
func (t *wgrad) image(w, i, n int) {
	g := &t.geo
	p := g.plane()
	s := t.scr[w]
	dyn := t.dy[n*g.m*p : (n+1)*g.m*p]
	if t.wantB {
		ab := t.accB[i]
		for m := 0; m < g.m; m++ {
			ab[m] += vsum(dyn[m*p : (m+1)*p])
		}
	}
	if !t.wantW {
		return
	}
	xn := t.x[n*g.c*g.h*g.w : (n+1)*g.c*g.h*g.w]
	acc := t.acc[i]
	if t.im2row {
		rows := s[:p*t.k]
		pa := s[p*t.k+slack:]
		for gi := 0; gi < g.g; gi++ {
			t.unroll(rows, xn[gi*g.cg*g.h*g.w:])
			packA(pa, dyn[gi*g.mg*p:], g.mg, p, p)
			gemmTiles(pa, g.mg, p, rows, 0, t.offs, 0, t.k, acc, gi*g.mg*t.k, t.k, acc, t.zeros, negInf, posInf)
		}
		return
	}
	img := s[:t.hp*t.wp*g.c]
	pa := s[len(img)+slack:]
	t.channelsLast(img, xn)
	for gi := 0; gi < g.g; gi++ {
		packA(pa, dyn[gi*g.mg*p:], g.mg, p, p)
		for ky := 0; ky < g.kh; ky++ {
			for kx := 0; kx < g.kw; kx++ {
				tap := ky*g.kw + kx
				boff := (ky*g.dh*t.wp+kx*g.dw)*g.c + gi*g.cg
				coff := (tap*g.m + gi*g.mg) * g.cg
				gemmTiles(pa, g.mg, p, img, boff, t.offs, 0, g.cg, acc, coff, g.cg, acc, t.zeros, negInf, posInf)
			}
		}
	}
}

// unroll writes rows[p][(c·kh + ky)·kw + kx] = the input at output position p's tap (ky, kx) in
// channel c (zero in the padding), for the cg channels starting at x.
func (t *wgrad) unroll(rows, x []float32) {
	g := &t.geo
	hw := g.h * g.w
	for oy := 0; oy < g.oh; oy++ {
		for ox := 0; ox < g.ow; ox++ {
			r := rows[(oy*g.ow+ox)*t.k : (oy*g.ow+ox+1)*t.k]
			j := 0
			for c := 0; c < g.cg; c++ {
				xc := x[c*hw : (c+1)*hw]
				for ky := 0; ky < g.kh; ky++ {
					iy := oy*g.sh + ky*g.dh - g.pt
					for kx := 0; kx < g.kw; kx++ {
						ix := ox*g.sw + kx*g.dw - g.pl
						if iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
							r[j] = xc[iy*g.w+ix]
						} else {
							r[j] = 0
						}
						j++
					}
				}
			}
		}
	}
}

// channelsLast copies image x (C×H×W) into img as hp×wp×C with the padding zero. Channels go
// in blocks of 8 (then 4): that many input rows are read side by side and written contiguously.
func (t *wgrad) channelsLast(img, x []float32) {
	g := &t.geo
	C, W, hw := g.c, g.w, g.h*g.w
	x0 := min(g.pl, t.wp)   // first column holding data
	x1 := min(g.pl+W, t.wp) // past the last
	for py := 0; py < t.hp; py++ {
		row := img[py*t.wp*C : (py+1)*t.wp*C]
		iy := py - g.pt
		if iy < 0 || iy >= g.h || x1 <= x0 {
			clear(row)
			continue
		}
		clear(row[:x0*C])
		clear(row[x1*C:])
		n := x1 - x0
		c := 0
		base := iy*W - g.pl + x0
		for ; c+8 <= C; c += 8 {
			s0, s1 := x[c*hw+base:][:n], x[(c+1)*hw+base:][:n]
			s2, s3 := x[(c+2)*hw+base:][:n], x[(c+3)*hw+base:][:n]
			s4, s5 := x[(c+4)*hw+base:][:n], x[(c+5)*hw+base:][:n]
			s6, s7 := x[(c+6)*hw+base:][:n], x[(c+7)*hw+base:][:n]
			d := row[x0*C+c:]
			for i := range s0 {
				q := (*[8]float32)(d[i*C:])
				q[0], q[1], q[2], q[3] = s0[i], s1[i], s2[i], s3[i]
				q[4], q[5], q[6], q[7] = s4[i], s5[i], s6[i], s7[i]
			}
		}
		for ; c+4 <= C; c += 4 {
			s0, s1 := x[c*hw+base:][:n], x[(c+1)*hw+base:][:n]
			s2, s3 := x[(c+2)*hw+base:][:n], x[(c+3)*hw+base:][:n]
			d := row[x0*C+c:]
			for i := range s0 {
				q := (*[4]float32)(d[i*C:])
				q[0], q[1], q[2], q[3] = s0[i], s1[i], s2[i], s3[i]
			}
		}
		for ; c < C; c++ {
			src := x[c*hw+base:][:n]
			d := row[x0*C+c:]
			for i, v := range src {
				d[i*C] = v
			}
		}
	}
}

// ---------------------------------------------------------------- data gradient (strided)

type dgrad struct {
	geo   cgeo
	k     int       // rows of cols: cg·taps
	pw    []float32 // per group: packed W_gᵀ (k × mg)
	offs  []int32   // mg rows of dY: m·P
	zeros []float32
	// run state
	dy, dx []float32
	acc    bool
	scr    [][]float32
}

func (t *dgrad) setup(g cgeo) {
	t.geo = g
	t.k = g.cg * g.taps()
	t.pw = newFloats(g.g * packedASize(t.k, g.mg))
	t.offs = rowOffsets(nil, g.mg, g.plane())
	t.zeros = make([]float32, roundUp(t.k, mr)+mr)
}

func (t *dgrad) scratch() int { return t.k*t.geo.plane() + slack }

func (t *dgrad) run(c *ctx, w, dy, dx []float32, acc bool) {
	g := &t.geo
	ps := packedASize(t.k, g.mg)
	for gi := 0; gi < g.g; gi++ {
		packATrans(t.pw[gi*ps:(gi+1)*ps], w[gi*g.mg*t.k:], t.k, g.mg, t.k)
	}
	t.dy, t.dx, t.acc, t.scr = dy, dx, acc, c.scratch
	c.parallel(g.n, t)
	t.dy, t.dx, t.scr = nil, nil, nil
}

func (t *dgrad) do(w, n int) {
	g := &t.geo
	p := g.plane()
	hw := g.h * g.w
	cols := t.scr[w][:t.k*p]
	dxn := t.dx[n*g.c*hw : (n+1)*g.c*hw]
	if !t.acc {
		clear(dxn)
	}
	ps := packedASize(t.k, g.mg)
	for gi := 0; gi < g.g; gi++ {
		gemmTiles(t.pw[gi*ps:(gi+1)*ps], t.k, g.mg, t.dy, (n*g.m+gi*g.mg)*p, t.offs, 0, p, cols, 0, p, nil, t.zeros, negInf, posInf)
		for c := 0; c < g.cg; c++ {
			dst := dxn[(gi*g.cg+c)*hw : (gi*g.cg+c+1)*hw]
			for ky := 0; ky < g.kh; ky++ {
				for kx := 0; kx < g.kw; kx++ {
					src := cols[((c*g.kh+ky)*g.kw+kx)*p:]
					oxa, oxb := validRange(g.ow, g.sw, kx*g.dw-g.pl, g.w)
					if oxb <= oxa {
						continue
					}
					n := oxb - oxa
					ix0 := oxa*g.sw + kx*g.dw - g.pl
					for oy := 0; oy < g.oh; oy++ {
						iy := oy*g.sh + ky*g.dh - g.pt
						if iy < 0 || iy >= g.h {
							continue
						}
						s := src[oy*g.ow+oxa : oy*g.ow+oxb]
						switch g.sw {
						case 1:
							d := dst[iy*g.w+ix0 : iy*g.w+ix0+n]
							for i, v := range s {
								d[i] += v
							}
						case 2:
							d := dst[iy*g.w+ix0 : iy*g.w+ix0+2*n-1]
							for i, v := range s {
								d[2*i] += v
							}
						default:
							d := dst[iy*g.w+ix0 : iy*g.w+ix0+g.sw*(n-1)+1]
							for i, v := range s {
								d[g.sw*i] += v
							}
						}
					}
				}
			}
		}
	}
}

// validRange returns the output positions [a, b) (of n) whose input position o·s + off lies in
// [0, size).
func validRange(n, s, off, size int) (a, b int) {
	a = 0
	if off < 0 {
		a = (-off + s - 1) / s
	}
	b = n
	if last := size - 1 - off; last < 0 {
		b = 0
	} else {
		b = min(n, last/s+1)
	}
	return a, max(a, b)
}

// ---------------------------------------------------------------- depthwise

// dwGrad is the backward of a conv with one input channel per group, by direct loops.
type dwGrad struct {
	geo cgeo
	// run state
	x, w, dy, dx, dW, dB []float32
	acc, accW, accB      bool
	dataT, weightT       rangeTask
}

func (t *dwGrad) setup(g cgeo) {
	t.geo = g
	t.dataT.fn = t.dataPlanes
	t.weightT.fn = t.weightChannels
}

func (t *dwGrad) dataGrad(c *ctx, w, dy, dx []float32, acc bool) {
	g := &t.geo
	t.w, t.dy, t.dx, t.acc = w, dy, dx, acc
	c.parallelRange(g.n*g.c, g.n*g.m*g.plane()*g.taps(), &t.dataT)
	t.w, t.dy, t.dx = nil, nil, nil
}

// dataPlanes computes dX planes [lo, hi) over (image, input channel).
func (t *dwGrad) dataPlanes(lo, hi int) {
	g := &t.geo
	hw, p := g.h*g.w, g.plane()
	for i := lo; i < hi; i++ {
		n, c := i/g.c, i%g.c
		dst := t.dx[i*hw : (i+1)*hw]
		if !t.acc {
			clear(dst)
		}
		for m := c * g.mg; m < (c+1)*g.mg; m++ {
			src := t.dy[(n*g.m+m)*p : (n*g.m+m+1)*p]
			for ky := 0; ky < g.kh; ky++ {
				for kx := 0; kx < g.kw; kx++ {
					wv := t.w[(m*g.kh+ky)*g.kw+kx]
					oxa, oxb := validRange(g.ow, g.sw, kx*g.dw-g.pl, g.w)
					for oy := 0; oy < g.oh; oy++ {
						iy := oy*g.sh + ky*g.dh - g.pt
						if iy < 0 || iy >= g.h {
							continue
						}
						row := dst[iy*g.w:]
						s := src[oy*g.ow:]
						ix := oxa*g.sw + kx*g.dw - g.pl
						for ox := oxa; ox < oxb; ox++ {
							row[ix] += wv * s[ox]
							ix += g.sw
						}
					}
				}
			}
		}
	}
}

func (t *dwGrad) weightGrad(c *ctx, x, dy, dW, dB []float32, accW, accB bool) {
	g := &t.geo
	t.x, t.dy, t.dW, t.dB, t.accW, t.accB = x, dy, dW, dB, accW, accB
	c.parallelRange(g.m, g.n*g.m*g.plane()*g.taps(), &t.weightT)
	t.x, t.dy, t.dW, t.dB = nil, nil, nil, nil
}

// weightChannels computes the weight (and bias) gradients of output channels [lo, hi).
func (t *dwGrad) weightChannels(lo, hi int) {
	g := &t.geo
	hw, p, taps := g.h*g.w, g.plane(), g.taps()
	for m := lo; m < hi; m++ {
		c := m / g.mg
		if t.dB != nil {
			var s float32
			for n := 0; n < g.n; n++ {
				for _, v := range t.dy[(n*g.m+m)*p : (n*g.m+m+1)*p] {
					s += v
				}
			}
			if t.accB {
				t.dB[m] += s
			} else {
				t.dB[m] = s
			}
		}
		if t.dW == nil {
			continue
		}
		for ky := 0; ky < g.kh; ky++ {
			for kx := 0; kx < g.kw; kx++ {
				oxa, oxb := validRange(g.ow, g.sw, kx*g.dw-g.pl, g.w)
				var s float32
				for n := 0; n < g.n; n++ {
					src := t.dy[(n*g.m+m)*p : (n*g.m+m+1)*p]
					xc := t.x[(n*g.c+c)*hw : (n*g.c+c+1)*hw]
					for oy := 0; oy < g.oh; oy++ {
						iy := oy*g.sh + ky*g.dh - g.pt
						if iy < 0 || iy >= g.h {
							continue
						}
						row := xc[iy*g.w:]
						d := src[oy*g.ow:]
						ix := oxa*g.sw + kx*g.dw - g.pl
						for ox := oxa; ox < oxb; ox++ {
							s += d[ox] * row[ix]
							ix += g.sw
						}
					}
				}
				at := m*taps + ky*g.kw + kx
				if t.accW {
					t.dW[at] += s
				} else {
					t.dW[at] = s
				}
			}
		}
	}
}

// ---------------------------------------------------------------- stride-1 data gradient

// innerConv computes a stride-1 conv's data gradient as a conv on the forward kernel: dX = conv
// of dY with W'[g·cg + c][m][ky][kx] = W[g·mg + m][c][kh−1−ky][kw−1−kx], pads (k−1)·d − pad.
type innerConv struct {
	geo     cgeo
	sub     ctx // the ctx the inner op runs with (a field: a local would escape)
	op      op
	wT      *Tensor
	tmp     *Tensor
	in, out []*Tensor
}

func newInnerConv(g cgeo, wShape []int) (*innerConv, error) {
	nd := &onnx.Node{OpType: "Conv", Name: "backward", Inputs: []string{"dy", "w"}, Outputs: []string{"dx"}}
	pt, pb := (g.kh-1)*g.dh-g.pt, (g.kh-1)*g.dh-g.pb
	pl, pr := (g.kw-1)*g.dw-g.pl, (g.kw-1)*g.dw-g.pr
	wt := append([]int{g.c, g.mg}, wShape[2:]...)
	if g.rank == 1 {
		nd.SetInts("kernel_shape", []int64{int64(g.kw)})
		nd.SetInts("pads", []int64{int64(pl), int64(pr)})
		nd.SetInts("dilations", []int64{int64(g.dw)})
	} else {
		nd.SetInts("kernel_shape", []int64{int64(g.kh), int64(g.kw)})
		nd.SetInts("pads", []int64{int64(pt), int64(pl), int64(pb), int64(pr)})
		nd.SetInts("dilations", []int64{int64(g.dh), int64(g.dw)})
	}
	nd.SetInt("group", int64(g.g))
	o, err := buildConv(&builder{n: nd, opset: 13, consts: map[string]*Tensor{}})
	if err != nil {
		return nil, err
	}
	ic := &innerConv{geo: g, op: o, wT: &Tensor{Shape: wt, Data: newFloats(numel(wt))}}
	ic.tmp = &Tensor{}
	ic.in = make([]*Tensor, 2)
	ic.out = make([]*Tensor, 1)
	return ic, nil
}

func (ic *innerConv) scratch(dyShape []int, threads int) (int, int) {
	dy := &Tensor{Shape: dyShape}
	ic.in[0], ic.in[1] = dy, ic.wT
	defer func() { ic.in[0], ic.in[1] = nil, nil }()
	if _, err := ic.op.infer(ic.in); err != nil {
		return 0, 0
	}
	if so, ok := ic.op.(scratchOp); ok {
		return so.scratch(ic.in, threads)
	}
	return 0, 0
}

func (ic *innerConv) run(c *ctx, w []float32, dy, dx *Tensor, acc bool) error {
	g := &ic.geo
	taps := g.taps()
	wt := ic.wT.Data
	for gi := 0; gi < g.g; gi++ {
		for m := 0; m < g.mg; m++ {
			for ci := 0; ci < g.cg; ci++ {
				src := w[((gi*g.mg+m)*g.cg+ci)*taps:]
				dst := wt[((gi*g.cg+ci)*g.mg+m)*taps:]
				for t := 0; t < taps; t++ {
					dst[t] = src[taps-1-t]
				}
			}
		}
	}
	ic.in[0], ic.in[1] = dy, ic.wT
	out := dx
	ic.sub = *c
	if acc {
		n := dx.Len()
		ic.tmp.Shape, ic.tmp.Data = dx.Shape, c.shared[:n]
		ic.sub.shared = c.shared[n+slack:]
		out = ic.tmp
	}
	ic.out[0] = out
	if err := ic.op.run(&ic.sub, ic.in, ic.out); err != nil {
		return err
	}
	if acc {
		d := dx.Data
		for i, v := range out.Data[:len(d)] {
			d[i] += v
		}
	}
	ic.in[0], ic.in[1], ic.out[0] = nil, nil, nil
	ic.tmp.Data = nil
	return nil
}

// ---------------------------------------------------------------- ConvTranspose

// convTGrad is ConvTranspose's backward: dX is a Conv of dY with W (same strides, dilations,
// groups, pads), dW is that conv's weight gradient with dY as input and X as output gradient.
type convTGrad struct {
	node  *onnx.Node
	fwd   op
	shape [2][]int
	geo   cgeo // the conv from dY to X
	wg    wgrad
	conv  op
	cin   []*Tensor
	cout  []*Tensor
	tmp   *Tensor
	sub   ctx
}

func (o *convTGrad) prepare(c *ctx, in, out []*Tensor) error {
	if slices.Equal(o.shape[0], in[0].Shape) && slices.Equal(o.shape[1], in[1].Shape) {
		return nil
	}
	ct, ok := o.fwd.(*convTransposeOp)
	if !ok {
		return fmt.Errorf("internal: ConvTranspose forward is %T", o.fwd)
	}
	tg, err := ct.geometry(in)
	if err != nil {
		return err
	}
	group := int(o.node.Int("group", 1))
	// the conv from Y (m channels, oh×ow) to X (c channels, h×w)
	g := cgeo{rank: tg.rank, n: tg.n, c: tg.m, h: tg.oh, w: tg.ow, m: tg.c, oh: tg.h, ow: tg.w,
		kh: tg.kh, kw: tg.kw, sh: tg.sh, sw: tg.sw, dh: tg.dh, dw: tg.dw, pt: tg.pt, pl: tg.pl, g: group}
	g.cg, g.mg = g.c/group, g.m/group
	g.pb = max(0, g.sh*(g.oh-1)+(g.kh-1)*g.dh+1-g.pt-g.h)
	g.pr = max(0, g.sw*(g.ow-1)+(g.kw-1)*g.dw+1-g.pl-g.w)
	o.geo = g
	o.shape = [2][]int{append([]int{}, in[0].Shape...), append([]int{}, in[1].Shape...)}
	o.wg.setup(g, c.threads)
	nd := &onnx.Node{OpType: "Conv", Name: "backward", Inputs: []string{"dy", "w"}, Outputs: []string{"dx"}}
	if g.rank == 1 {
		nd.SetInts("kernel_shape", []int64{int64(g.kw)})
		nd.SetInts("pads", []int64{int64(g.pl), int64(g.pr)})
		nd.SetInts("dilations", []int64{int64(g.dw)})
		nd.SetInts("strides", []int64{int64(g.sw)})
	} else {
		nd.SetInts("kernel_shape", []int64{int64(g.kh), int64(g.kw)})
		nd.SetInts("pads", []int64{int64(g.pt), int64(g.pl), int64(g.pb), int64(g.pr)})
		nd.SetInts("dilations", []int64{int64(g.dh), int64(g.dw)})
		nd.SetInts("strides", []int64{int64(g.sh), int64(g.sw)})
	}
	nd.SetInt("group", int64(group))
	if o.conv, err = buildConv(&builder{n: nd, opset: 13, consts: map[string]*Tensor{}}); err != nil {
		return err
	}
	o.cin, o.cout, o.tmp = make([]*Tensor, 2), make([]*Tensor, 1), &Tensor{}
	o.cin[0], o.cin[1] = out[0], in[1]
	specs, err := o.conv.infer(o.cin)
	if err != nil {
		return err
	}
	if !slices.Equal(specs[0].shape, in[0].Shape) {
		return fmt.Errorf("internal: the data gradient conv gives %v for X %v", specs[0].shape, in[0].Shape)
	}
	return nil
}

func (o *convTGrad) gradScratch(in, out []*Tensor, threads int) (int, int) {
	per, shared := o.wg.scratch(), 0
	o.cin[0], o.cin[1] = out[0], in[1]
	if so, ok := o.conv.(scratchOp); ok {
		p, s := so.scratch(o.cin, threads)
		per, shared = max(per, p), s
	}
	return per, shared + in[0].Len() + slack
}

func (o *convTGrad) backward(c *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	if err := o.prepare(c, a.in, a.out); err != nil { // another input shape ran since
		return err
	}
	x, w := a.in[0], a.in[1]
	if dx := a.din[0]; dx != nil {
		o.cin[0], o.cin[1] = dy, w
		out := dx
		o.sub = *c
		if a.acc[0] {
			n := dx.Len()
			o.tmp.Shape, o.tmp.Data = dx.Shape, c.shared[:n]
			o.sub.shared = c.shared[n+slack:]
			out = o.tmp
		}
		o.cout[0] = out
		if err := o.conv.run(&o.sub, o.cin, o.cout); err != nil {
			return err
		}
		if a.acc[0] {
			for i, v := range out.Data[:dx.Len()] {
				dx.Data[i] += v
			}
		}
		o.cin[0], o.cin[1], o.cout[0], o.tmp.Data = nil, nil, nil, nil
	}
	var dW, dB []float32
	accB := false
	if a.din[1] != nil {
		dW = a.din[1].Data
	}
	if len(a.din) > 2 && a.din[2] != nil {
		dB, accB = a.din[2].Data, a.acc[2]
		if !accB {
			clear(dB)
		}
		p := out0Plane(dy)
		m := dy.Shape[1]
		for n := 0; n < dy.Shape[0]; n++ {
			for ch := 0; ch < m; ch++ {
				var s float32
				for _, v := range dy.Data[(n*m+ch)*p : (n*m+ch+1)*p] {
					s += v
				}
				dB[ch] += s
			}
		}
	}
	if dW != nil {
		// input of the conv: dY; its output gradient: X
		o.wg.run(c, dy.Data, x.Data, dW, nil, a.acc[1], false)
	}
	return nil
}

func out0Plane(t *Tensor) int { return numel(t.Shape[2:]) }

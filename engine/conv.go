package engine

import (
	"fmt"
	"slices"
)

// convOp is Conv (1-D and 2-D, any pads, strides, dilations and groups), optionally fused with
// the BatchNormalization folded into its weights, a residual Add and a Relu/Clip.
//
// A stride-1 convolution is a GEMM whose B operand is the input image itself read at shifted
// offsets: output (oy, ox) needs input (oy+ky·dh, ox+kx·dw) for tap (ky, kx), so the micro-kernel
// walks taps with an offset table and columns along a row of the image. Padding and strides are
// handled by first copying each image into zero-padded "phase planes": with stride s, plane
// (py, px) holds the padded input's rows py, py+s, ... and columns px, px+s, ..., so that
// consecutive output columns again read consecutive floats. Unpadded stride-1 convs read the
// input in place; when the output width equals the plane width (1×1 convs) whole planes are one
// row. Depthwise convs (one input channel per group) use a direct kernel instead.
type convOp struct {
	win   window
	group int
	// Constant weights, packed per group for the GEMM kernel (nil when W is a run-time input).
	wShape []int // [M, C/group, kh, (kw)]
	packed []float32
	bias   []float32 // per group, padded to a multiple of 4 rows
	dwW    []float32 // depthwise: raw weights [M][kh·kw]
	dwB    []float32 // depthwise: bias per output channel
	// Fused epilogue.
	lo, hi float32
	resIn  int // input index of the residual, or -1

	geom  *convGeom            // the geometry of the current run
	geoms map[[8]int]*convGeom // by input and weight shape
	// run state
	x, y, res   *Tensor
	pk, bs, buf []float32
	copyT       rangeTask
	dwTask      dwTask
	computeT    computeTask
	imageT      imageTask
}

// convGeom is a conv's geometry at one input shape.
type convGeom struct {
	n, c, h, w             int
	m, oh, ow              int
	kh, kw, sh, sw, dh, dw int
	pt, pl                 int
	g, cg, mg, k           int
	direct, flat           bool
	rowPh, colPh           []int // phase index of each row/col phase, -1 when unused
	nr, nc                 int   // used row and column phases
	hq, wq, cs             int   // phase plane dims, channel stride in the phase buffer
	offs                   []int32
	chunks                 []segChunk // output pieces of ≤ segW columns of one image and group
	segW                   int        // columns per segment: 8, or 16 with the AVX-512 kernel
	pairRows               bool       // each chunk holds two output rows (see geometry)
	kc                     int        // k steps per block
	rank                   int        // spatial rank, 1 or 2
}

func (o *convOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) < 2 || in[0] == nil {
		return nil, fmt.Errorf("wants inputs X and W")
	}
	g, err := o.geometry(in)
	if err != nil {
		return nil, err
	}
	shape := []int{g.n, g.m, g.oh, g.ow}
	if g.rank == 1 {
		shape = []int{g.n, g.m, g.ow}
	}
	return floatSpec(shape), nil
}

func (o *convOp) weightShape(in []*Tensor) ([]int, error) {
	if o.wShape != nil {
		return o.wShape, nil
	}
	if in[1] == nil || in[1].IsInt() {
		return nil, fmt.Errorf("W must be a float tensor")
	}
	return in[1].Shape, nil
}

// geometry computes (and caches) the conv's geometry for the input shapes.
func (o *convOp) geometry(in []*Tensor) (*convGeom, error) {
	x := in[0]
	if x.IsInt() {
		return nil, fmt.Errorf("X must be a float tensor")
	}
	ws, err := o.weightShape(in)
	if err != nil {
		return nil, err
	}
	rank := len(x.Shape) - 2
	if rank < 1 || rank > 2 {
		return nil, fmt.Errorf("only 1-D and 2-D convolutions are supported, X has shape %v", x.Shape)
	}
	if len(ws) != rank+2 {
		return nil, fmt.Errorf("W has shape %v, X has shape %v", ws, x.Shape)
	}
	var key [8]int
	copy(key[:], x.Shape)
	copy(key[4:], ws)
	if rank == 1 {
		key = [8]int{x.Shape[0], x.Shape[1], 1, x.Shape[2], ws[0], ws[1], 1, ws[2]}
	}
	if g := o.geoms[key]; g != nil {
		o.geom = g
		return g, nil
	}
	g := &convGeom{rank: rank, n: key[0], c: key[1], h: key[2], w: key[3], m: ws[0], cg: ws[1], g: o.group}
	if g.g < 1 || g.c != g.cg*g.g || g.m%g.g != 0 {
		return nil, fmt.Errorf("X has %d channels, W has shape %v and group is %d", g.c, ws, g.g)
	}
	g.mg = g.m / g.g
	win := o.win
	if win.kernel == nil {
		win.kernel = ws[2:]
	}
	if len(win.kernel) != rank || !slices.Equal(win.kernel, ws[2:]) {
		return nil, fmt.Errorf("kernel_shape %v does not match W %v", win.kernel, ws)
	}
	inSp := x.Shape[2:]
	out, pb, pe, err := win.outDims(inSp)
	if err != nil {
		return nil, err
	}
	if rank == 1 {
		// a 1-D conv is a 2-D conv of height 1
		win.kernel = []int{1, win.kernel[0]}
		out, pb, pe = []int{1, out[0]}, []int{0, pb[0]}, []int{0, pe[0]}
		if len(win.strides) == 1 {
			win.strides = []int{1, win.strides[0]}
		}
		if len(win.dilations) == 1 {
			win.dilations = []int{1, win.dilations[0]}
		}
	}
	g.kh, g.kw = win.kernel[0], win.kernel[1]
	g.sh, g.sw, g.dh, g.dw = 1, 1, 1, 1
	if len(win.strides) == 2 {
		g.sh, g.sw = win.strides[0], win.strides[1]
	}
	if len(win.dilations) == 2 {
		g.dh, g.dw = win.dilations[0], win.dilations[1]
	}
	g.oh, g.ow = out[0], out[1]
	g.pt, g.pl = pb[0], pb[1]
	g.k = g.cg * g.kh * g.kw
	g.direct = g.sh == 1 && g.sw == 1 && pb[0] == 0 && pb[1] == 0 && pe[0] == 0 && pe[1] == 0
	// phases
	g.rowPh, g.colPh = make([]int, g.sh), make([]int, g.sw)
	for i := range g.rowPh {
		g.rowPh[i] = -1
	}
	for i := range g.colPh {
		g.colPh[i] = -1
	}
	for ky := 0; ky < g.kh; ky++ {
		if py := ky * g.dh % g.sh; g.rowPh[py] < 0 {
			g.rowPh[py] = 0
		}
	}
	for kx := 0; kx < g.kw; kx++ {
		if px := kx * g.dw % g.sw; g.colPh[px] < 0 {
			g.colPh[px] = 0
		}
	}
	for i, v := range g.rowPh {
		if v == 0 {
			g.rowPh[i] = g.nr
			g.nr++
		}
	}
	for i, v := range g.colPh {
		if v == 0 {
			g.colPh[i] = g.nc
			g.nc++
		}
	}
	g.hq = g.oh + (g.kh-1)*g.dh/g.sh
	g.wq = g.ow + (g.kw-1)*g.dw/g.sw
	if g.direct {
		g.hq, g.wq = g.h, g.w
	}
	g.cs = g.nr * g.nc * g.hq * g.wq
	g.flat = g.wq == g.ow
	g.segW = segWidth(g.flat, g.oh, g.ow)
	sw := g.segW
	g.chunks = g.chunks[:0]
	// two rows of a narrow map fit one 16-column segment: they are consecutive in the phase
	// planes (the columns between them, padding, are computed and dropped) and in the output
	g.pairRows = haveAVX512 && !g.flat && g.oh > 1 && g.wq+g.ow <= 16
	switch {
	case g.pairRows:
		g.segW = 16
		for oy := 0; oy < g.oh; oy += 2 {
			ch := segChunk{b: int32(oy * g.wq), c: int32(oy * g.ow), n: int32(g.ow)}
			if oy+1 < g.oh {
				ch.n2 = int32(g.ow)
			}
			g.chunks = append(g.chunks, ch)
		}
	case g.flat:
		for q := 0; q < g.oh*g.ow; q += sw {
			g.chunks = append(g.chunks, segChunk{b: int32(q), c: int32(q), n: int32(min(sw, g.oh*g.ow-q))})
		}
	default:
		for oy := 0; oy < g.oh; oy++ {
			for ox := 0; ox < g.ow; ox += sw {
				g.chunks = append(g.chunks, segChunk{b: int32(oy*g.wq + ox), c: int32(oy*g.ow + ox), n: int32(min(sw, g.ow-ox))})
			}
		}
	}
	g.kc = blockK(g.k)
	g.offs = make([]int32, g.k)
	plane := g.hq * g.wq
	for c := 0; c < g.cg; c++ {
		for ky := 0; ky < g.kh; ky++ {
			for kx := 0; kx < g.kw; kx++ {
				ph := g.rowPh[ky*g.dh%g.sh]*g.nc + g.colPh[kx*g.dw%g.sw]
				off := c*g.cs + ph*plane + (ky*g.dh/g.sh)*g.wq + kx*g.dw/g.sw
				g.offs[(c*g.kh+ky)*g.kw+kx] = int32(off)
			}
		}
	}
	if int64(g.n)*int64(g.c)*int64(g.cs) > 1<<31-1 {
		return nil, fmt.Errorf("input %v is too large", x.Shape)
	}
	if o.geoms == nil || len(o.geoms) > 16 {
		o.geoms = map[[8]int]*convGeom{}
	}
	o.geoms[key] = g
	o.geom = g
	return g, nil
}

// isDepthwise reports whether a conv has one input channel per group (and several groups):
// those run the direct depthwise kernel instead of the GEMM.
func isDepthwise(group, cg int) bool { return cg == 1 && group > 1 }

// packWeights packs W (and bias) for the kernels: per group an A panel of mg rows × k.
func packConvWeights(w []float32, m, cg, khw, group int, bias []float32, packed, pbias []float32) {
	mg, k := m/group, cg*khw
	pa := packedASize(mg, k)
	pb := roundUp(mg, mr)
	for g := 0; g < group; g++ {
		packA(packed[g*pa:(g+1)*pa], w[g*mg*k:], mg, k, k)
		for i := 0; i < pb; i++ {
			v := float32(0)
			if i < mg && bias != nil {
				v = bias[g*mg+i]
			}
			pbias[g*pb+i] = v
		}
	}
}

// setWeights makes W and B constants of the op (packing them once).
func (o *convOp) setWeights(w []float32, shape []int, bias []float32) error {
	if len(shape) < 3 {
		return fmt.Errorf("W has shape %v", shape)
	}
	m, cg := shape[0], shape[1]
	khw := numel(shape[2:])
	if o.group < 1 || m%o.group != 0 {
		return fmt.Errorf("W has %d output channels, group is %d", m, o.group)
	}
	if bias != nil && len(bias) != m {
		return fmt.Errorf("B has %d values, W has %d output channels", len(bias), m)
	}
	o.wShape = append([]int{}, shape...)
	if isDepthwise(o.group, cg) {
		o.dwW = append([]float32{}, w[:m*khw]...)
		o.dwB = make([]float32, m)
		copy(o.dwB, bias)
		return nil
	}
	mg, k := m/o.group, cg*khw
	o.packed = newFloats(o.group * packedASize(mg, k))
	o.bias = make([]float32, o.group*roundUp(mg, mr))
	packConvWeights(w, m, cg, khw, o.group, bias, o.packed, o.bias)
	return nil
}

func (o *convOp) scratch(in []*Tensor, threads int) (perWorker, shared int) {
	g, err := o.geometry(in)
	if err != nil {
		return 0, 0
	}
	if o.wShape == nil { // weights packed at run time
		if isDepthwise(g.g, g.cg) {
			shared = g.m*g.kh*g.kw + g.m
		} else {
			shared = g.g*packedASize(g.mg, g.k) + g.g*roundUp(g.mg, mr)
		}
	}
	if isDepthwise(g.g, g.cg) && !g.flat {
		perWorker = g.oh*g.wq + slack
	}
	if !g.direct {
		if g.n >= threads*2 && !isDepthwise(g.g, g.cg) {
			perWorker = g.c * g.cs
		} else {
			shared += g.n * g.c * g.cs
		}
	}
	return perWorker, shared
}

func (o *convOp) run(c *ctx, in, out []*Tensor) error {
	g, err := o.geometry(in)
	if err != nil {
		return err
	}
	x, y := in[0], out[0]
	shared := c.shared
	o.pk, o.bs = o.packed, o.bias
	dwW, dwB := o.dwW, o.dwB
	if o.wShape == nil {
		w := in[1]
		var b []float32
		if len(in) > 2 && in[2] != nil {
			if in[2].IsInt() || in[2].Len() != g.m {
				return fmt.Errorf("B has shape %v, want [%d]", in[2].Shape, g.m)
			}
			b = in[2].Data
		}
		if isDepthwise(g.g, g.cg) {
			n := g.m * g.kh * g.kw
			dwW, dwB = shared[:n], shared[n:n+g.m]
			copy(dwW, w.Data)
			clear(dwB)
			copy(dwB, b)
			shared = shared[n+g.m:]
		} else {
			np, nb := g.g*packedASize(g.mg, g.k), g.g*roundUp(g.mg, mr)
			o.pk, o.bs = shared[:np], shared[np:np+nb]
			packConvWeights(w.Data, g.m, g.cg, g.kh*g.kw, g.g, b, o.pk, o.bs)
			shared = shared[np+nb:]
		}
	}
	o.x, o.y = x, y
	o.res = nil
	lo, hi := o.lo, o.hi
	postAdd := false
	if o.resIn >= 0 {
		r := in[o.resIn]
		if r == nil || r.IsInt() {
			return fmt.Errorf("residual input missing")
		}
		if slices.Equal(r.Shape, y.Shape) {
			o.res = r
		} else {
			postAdd = true // broadcasting Add: done after the conv
			lo, hi = negInf, posInf
		}
	}
	if isDepthwise(g.g, g.cg) {
		o.runDepthwise(c, g, dwW, dwB, lo, hi, shared)
	} else {
		o.runGEMM(c, g, lo, hi, shared)
	}
	if postAdd {
		r := in[o.resIn]
		l, err := makeBcast(y.Shape, y.Shape, r.Shape)
		if err != nil {
			return err
		}
		for row := 0; row < l.outerCount; row++ {
			oa, ob := l.offsets(row)
			dst := y.Data[row*l.inner : (row+1)*l.inner]
			binaryFloat(binAdd, dst, y.Data[oa:], r.Data[ob:], l.isa, l.isb)
			for i, v := range dst {
				dst[i] = min(max(v, o.lo), o.hi)
			}
		}
	}
	o.x, o.y, o.res = nil, nil, nil
	return nil
}

// runGEMM runs the GEMM path: per image, group and output row, every 4-row panel of the packed
// weights against 24-column tiles of the phase planes.
func (o *convOp) runGEMM(c *ctx, g *convGeom, lo, hi float32, shared []float32) {
	t := &o.computeT
	t.o, t.g, t.lo, t.hi = o, g, lo, hi
	switch {
	case g.direct:
		t.buf, t.perImage = o.x.Data, g.c*g.cs
	case g.n >= c.threads*2:
		// each worker copies one image into its scratch, then computes it
		it := &o.imageT
		it.o, it.g, it.scratch, it.t = o, g, c.scratch, t
		c.parallel(g.n, it)
		return
	default:
		t.buf, t.perImage = shared[:g.n*g.c*g.cs], g.c*g.cs
		o.buf = t.buf
		o.copyAll(c, g)
	}
	work := g.n * g.m * g.oh * g.ow * g.k
	triples := (len(g.chunks) + 2) / 3
	chunks := c.chunks(g.n*g.g*triples, work)
	t.perTask = max(1, (g.n*g.g*triples+chunks-1)/chunks)
	t.perTask = min(t.perTask, triples)
	t.tasksPerGroup = (triples + t.perTask - 1) / t.perTask
	c.parallel(g.n*g.g*t.tasksPerGroup, t)
}

// segWidth is the columns per segment of a conv's output pieces: 16 where the AVX-512 kernel runs
// and 16-column pieces are fewer than 8-column ones (a 16-column tile costs about what an 8-column
// one does, so 7-wide maps keep 8), else 8.
func segWidth(flat bool, oh, ow int) int {
	if !haveAVX512 {
		return 8
	}
	pieces := func(w int) int {
		if flat {
			return (oh*ow + w - 1) / w
		}
		return oh * ((ow + w - 1) / w)
	}
	if pieces(16) < pieces(8) {
		return 16
	}
	return 8
}

// segChunk is up to segW output columns of one output row: where they read the image (b, relative
// to the image and group's planes) and where they go (c, relative to the group's first output
// plane), and how many are valid; with pairRows, n2 columns of the next row follow (see segArgs).
type segChunk struct{ b, c, n, n2 int32 }

// computeTask computes (image, group, chunk range) items from phase planes in buf.
type computeTask struct {
	o             *convOp
	g             *convGeom
	lo, hi        float32
	buf           []float32
	perImage      int // floats per image in buf
	perTask       int // chunk triples per item
	tasksPerGroup int
}

func (t *computeTask) do(_, i int) {
	part := i % t.tasksPerGroup
	gi := i / t.tasksPerGroup % t.g.g
	n := i / t.tasksPerGroup / t.g.g
	c0 := part * t.perTask * 3
	c1 := min(len(t.g.chunks), c0+t.perTask*3)
	t.chunksOf(n, n*t.perImage, gi, c0, c1)
}

// chunksOf computes output chunks [c0, c1) of image n, group gi, reading the image's planes at
// base in buf: three chunks per micro-kernel call, every 4-row panel of the group's weights,
// k in blocks of kc steps.
func (t *computeTask) chunksOf(n, base, gi, c0, c1 int) {
	g, o := t.g, t.o
	pa := packedASize(g.mg, g.k)
	pk := o.pk[gi*pa : (gi+1)*pa]
	bias := o.bs[gi*roundUp(g.mg, mr):]
	ldc := g.oh * g.ow
	bbase := base + gi*g.cg*g.cs
	cbase := (n*g.m + gi*g.mg) * ldc
	var zero [mr]float32
	var p segArgs
	p.ldc = ldc
	y := o.y.Data
	var res []float32
	if o.res != nil {
		res = o.res.Data
	}
	for ci := c0; ci < c1; ci += 3 {
		var cs [3]int
		for v := 0; v < 3; v++ {
			ch := g.chunks[min(ci+v, c1-1)]
			p.b[v] = &t.buf[bbase+int(ch.b)]
			cs[v] = cbase + int(ch.c)
			p.n[v], p.n2[v] = 0, 0
			if ci+v < c1 {
				p.n[v], p.n2[v] = int(ch.n), int(ch.n2)
			}
		}
		if g.segW == 16 {
			p.skip = 0
			if g.pairRows {
				p.skip = g.wq
			}
			p.setMasks()
		}
		for k0 := 0; k0 < g.k || k0 == 0; k0 += g.kc {
			p.k = min(g.kc, g.k-k0)
			first, last := k0 == 0, k0+g.kc >= g.k
			if p.k > 0 {
				p.offs = &g.offs[k0]
			}
			p.lo, p.hi = negInf, posInf
			if last {
				p.lo, p.hi = t.lo, t.hi
			}
			for i := 0; i < g.mg; i += mr {
				if p.k > 0 {
					p.a = &pk[i*g.k+k0*mr]
				}
				p.mrows = min(mr, g.mg-i)
				for v := 0; v < 3; v++ {
					at := cs[v] + i*ldc
					p.c[v] = &y[at]
					switch {
					case !first:
						p.res[v] = p.c[v]
					case res != nil:
						p.res[v] = &res[at]
					default:
						p.res[v] = nil
					}
				}
				if first {
					p.bias = &bias[i]
				} else {
					p.bias = &zero[0]
				}
				if g.segW == 16 {
					kernSeg16(&p)
				} else {
					kernSeg(&p)
				}
			}
		}
	}
}

// imageTask handles whole images per worker: copy into the worker's scratch, then compute.
type imageTask struct {
	o       *convOp
	g       *convGeom
	scratch [][]float32
	t       *computeTask
}

func (it *imageTask) do(w, n int) {
	g := it.g
	buf := it.scratch[w][:g.c*g.cs]
	for ch := 0; ch < g.c; ch++ {
		copyPhases(g, it.o.x.Data[(n*g.c+ch)*g.h*g.w:], buf[ch*g.cs:(ch+1)*g.cs])
	}
	t := *it.t // a copy with this worker's buffer
	t.buf = buf
	for gi := 0; gi < g.g; gi++ {
		t.chunksOf(n, 0, gi, 0, len(g.chunks))
	}
}

// copyAll fills the phase planes of every image: on the caller alone when they are small (one
// hand-over between goroutines fewer per conv), else across the workers.
func (o *convOp) copyAll(c *ctx, g *convGeom) {
	if items := g.n * g.c; items*g.cs < 1<<16 {
		o.copyPlanes(0, items)
	} else {
		c.parallelRange(items, items*g.cs, &o.copyT)
	}
}

// copyPlanes fills the phase planes of (image, channel) items [lo, hi).
func (o *convOp) copyPlanes(lo, hi int) {
	g := o.geom
	for i := lo; i < hi; i++ {
		copyPhases(g, o.x.Data[i*g.h*g.w:], o.buf[i*g.cs:(i+1)*g.cs])
	}
}

// copyPhases writes one channel's zero-padded, stride-split phase planes.
func copyPhases(g *convGeom, src, dst []float32) {
	plane := g.hq * g.wq
	for px, pc := range g.colPh {
		if pc < 0 {
			continue
		}
		// columns qx in [qa, qb) of this phase read input column x0 + qx·sw; the rest are padding
		x0 := px - g.pl
		qa := 0
		if x0 < 0 {
			qa = min(g.wq, (-x0+g.sw-1)/g.sw)
		}
		qb := qa
		if last := g.w - 1 - x0; last >= 0 {
			qb = max(qa, min(g.wq, last/g.sw+1))
		}
		for py, pr := range g.rowPh {
			if pr < 0 {
				continue
			}
			p := dst[(pr*g.nc+pc)*plane : (pr*g.nc+pc+1)*plane]
			for qy := 0; qy < g.hq; qy++ {
				row := p[qy*g.wq : (qy+1)*g.wq]
				iy := qy*g.sh + py - g.pt
				if iy < 0 || iy >= g.h {
					clear(row)
					continue
				}
				in := src[iy*g.w : (iy+1)*g.w]
				for i := 0; i < qa; i++ {
					row[i] = 0
				}
				dst := row[qa:qb]
				switch g.sw {
				case 1:
					copy(dst, in[x0+qa:])
				case 2:
					s := in[x0+qa*2:]
					s = s[:2*len(dst)-1]
					for i := range dst {
						dst[i] = s[2*i]
					}
				default:
					s := in[x0+qa*g.sw:]
					for i := range dst {
						dst[i] = s[i*g.sw]
					}
				}
				for i := qb; i < len(row); i++ {
					row[i] = 0
				}
			}
		}
	}
}

// runDepthwise computes a conv with one input channel per group directly: each output plane is
// a weighted sum of shifted copies of its input channel's planes.
func (o *convOp) runDepthwise(c *ctx, g *convGeom, w, b []float32, lo, hi float32, shared []float32) {
	t := &o.computeT
	t.lo, t.hi = lo, hi
	if g.direct {
		t.buf, t.perImage = o.x.Data, g.c*g.cs
	} else {
		t.buf, t.perImage = shared[:g.n*g.c*g.cs], g.c*g.cs
		o.buf = t.buf
		o.copyAll(c, g)
	}
	o.dwW, o.dwB = w, b
	planes := g.n * g.m
	dt := &o.dwTask
	dt.o, dt.scratch = o, c.scratch
	dt.planes, dt.parts = planes, c.chunks(planes, planes*g.oh*g.ow*g.kh*g.kw)
	c.parallel(dt.parts, dt)
	if o.wShape == nil {
		o.dwW, o.dwB = nil, nil
	}
}

// dwTask computes the output planes of a depthwise conv, split in parts.
type dwTask struct {
	o             *convOp
	scratch       [][]float32
	planes, parts int
}

func (t *dwTask) do(w, i int) {
	lo, hi := split(t.planes, t.parts, i)
	var tmp []float32
	if len(t.scratch) > w {
		tmp = t.scratch[w]
	}
	t.o.depthwisePlanes(lo, hi, tmp)
}

// depthwisePlanes computes output planes [lo, hi) (over n×m) of a depthwise conv. Each plane is
// one pass of the row kernel over the flattened phase plane (rows of width wq, of which the
// first ow are outputs), written to tmp and compacted, or straight to the output when wq = ow.
func (o *convOp) depthwisePlanes(lo, hi int, tmp []float32) {
	g, t := o.geom, &o.computeT
	khw := g.kh * g.kw
	plane := g.oh * g.ow
	span := (g.oh-1)*g.wq + g.ow
	var p dwArgs
	p.offs, p.taps, p.n = &g.offs[0], khw, span
	p.lo, p.hi = t.lo, t.hi
	if o.res != nil {
		p.lo, p.hi = negInf, posInf
	}
	for i := lo; i < hi; i++ {
		n, m := i/g.m, i%g.m
		ch := m / g.mg // input channel
		base := n*t.perImage + ch*g.cs
		y := o.y.Data[i*plane : (i+1)*plane]
		p.src, p.w, p.bias = &t.buf[base], &o.dwW[m*khw], o.dwB[m]
		if g.flat {
			p.dst = &y[0]
			dwRow(&p)
		} else {
			p.dst = &tmp[0]
			dwRow(&p)
			for oy := 0; oy < g.oh; oy++ {
				copy(y[oy*g.ow:(oy+1)*g.ow], tmp[oy*g.wq:])
			}
		}
		if o.res != nil {
			r := o.res.Data[i*plane : (i+1)*plane]
			for j := range y {
				y[j] = min(max(y[j]+r[j], t.lo), t.hi)
			}
		}
	}
}

package engine

import "fmt"

// gemmTask computes Y = packedA·B (+ Y when accumulate) over column chunks in parallel.
type gemmTask struct {
	pa         []float32
	m, k, n    int
	b          []float32
	boff       int
	offs       []int32
	y          []float32
	yoff       int
	accumulate bool
	bias       []float32
	parts      int
	// pack, when set, holds per-worker buffers of k×24 floats: B is copied one 24-column panel
	// at a time (large GEMMs, where reading B rows in place misses the caches); packOffs is p·24.
	pack     [][]float32
	packOffs []int32
}

// packThreshold is the size of B (k·n floats) from which GEMM ops pack B panels.
const packThreshold = 1 << 16

func (t *gemmTask) do(w, i int) {
	tiles := (t.n + tileWidth - 1) / tileWidth
	lo, hi := split(tiles, t.parts, i)
	j0, j1 := lo*tileWidth, min(t.n, hi*tileWidth)
	if j0 >= j1 {
		return
	}
	var res []float32
	if t.accumulate {
		res = t.y
	}
	if t.pack == nil || t.k == 0 {
		gemmTiles(t.pa, t.m, t.k, t.b, t.boff, t.offs, j0, j1, t.y, t.yoff, t.n, res, t.bias, negInf, posInf)
		return
	}
	buf := t.pack[w][:t.k*tileWidth]
	for j := j0; j < j1; j += tileWidth {
		width := min(tileWidth, j1-j)
		for p := 0; p < t.k; p++ {
			row := buf[p*tileWidth : (p+1)*tileWidth]
			src := t.b[t.boff+int(t.offs[p])+j:]
			copy(row[:width], src[:width])
			clear(row[width:])
		}
		gemmTiles(t.pa, t.m, t.k, buf, -j, t.packOffs, j, j+width, t.y, t.yoff, t.n, res, t.bias, negInf, posInf)
	}
}

// packFor turns on B packing for big GEMMs when the workers have the scratch for it.
func (t *gemmTask) packFor(c *ctx, offs *[]int32) {
	if t.k*t.n < packThreshold || len(c.scratch) == 0 || len(c.scratch[0]) < t.k*tileWidth {
		return
	}
	t.pack = c.scratch
	*offs = rowOffsets(*offs, t.k, tileWidth)
	t.packOffs = *offs
}

// packScratch is the per-worker scratch packFor needs.
func packScratch(k, n int) int {
	if k*n < packThreshold {
		return 0
	}
	return k*tileWidth + slack
}

func (c *ctx) runGemm(t *gemmTask) {
	if t.m == 0 || t.n == 0 {
		return
	}
	tiles := (t.n + tileWidth - 1) / tileWidth
	t.parts = c.chunks(tiles, t.m*t.n*max(t.k, 1))
	c.parallel(t.parts, t)
}

// rowOffsets returns p·ld for p < k, reusing buf.
func rowOffsets(buf []int32, k, ld int) []int32 {
	if cap(buf) < k {
		buf = make([]int32, k)
	}
	buf = buf[:k]
	for p := range buf {
		buf[p] = int32(p * ld)
	}
	return buf
}

// gemmOp is Gemm: Y = alpha·op(A)·op(B) + beta·C, with C broadcast to [M, N].
type gemmOp struct {
	alpha, beta    float32
	transA, transB bool
	bConst         []float32 // constant B, transposed to [K, N] when transB, with slack
	bShape         [2]int    // K, N of bConst
	zeros          []float32
	offs, poffs    []int32
	t              gemmTask
}

func buildGemm(b *builder) (op, error) {
	n := b.n
	o := &gemmOp{alpha: n.Float("alpha", 1), beta: n.Float("beta", 1), transA: n.Int("transA", 0) != 0, transB: n.Int("transB", 0) != 0}
	if bt := b.konst(1); bt != nil && !bt.IsInt() && len(bt.Shape) == 2 {
		k, nn := bt.Shape[0], bt.Shape[1]
		if o.transB {
			k, nn = nn, k
		}
		o.bConst, o.bShape = newFloats(k*nn), [2]int{k, nn}
		if o.transB {
			transpose2D(o.bConst, bt.Data, nn, k)
		} else {
			copy(o.bConst, bt.Data)
		}
	}
	return o, nil
}

// transpose2D writes the transpose of the r×c matrix src into dst (c×r).
func transpose2D(dst, src []float32, r, c int) {
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			dst[j*r+i] = src[i*c+j]
		}
	}
}

func (o *gemmOp) dims(in []*Tensor) (m, k, n int, err error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil || in[0].IsInt() || in[1].IsInt() {
		return 0, 0, 0, fmt.Errorf("wants float A and B")
	}
	a, b := in[0].Shape, in[1].Shape
	if len(a) != 2 || len(b) != 2 {
		return 0, 0, 0, fmt.Errorf("A %v and B %v must be matrices", a, b)
	}
	m, k = a[0], a[1]
	if o.transA {
		m, k = k, m
	}
	kb, n := b[0], b[1]
	if o.transB {
		kb, n = n, kb
	}
	if k != kb {
		return 0, 0, 0, fmt.Errorf("A %v and B %v do not multiply (transA %v, transB %v)", a, b, o.transA, o.transB)
	}
	return m, k, n, nil
}

func (o *gemmOp) infer(in []*Tensor) ([]spec, error) {
	m, _, n, err := o.dims(in)
	if err != nil {
		return nil, err
	}
	if len(in) > 2 && in[2] != nil {
		if _, err := broadcastShape([]int{m, n}, in[2].Shape); err != nil {
			return nil, fmt.Errorf("C %v does not broadcast to [%d %d]", in[2].Shape, m, n)
		}
		if len(in[2].Shape) > 2 {
			return nil, fmt.Errorf("C %v has rank above 2", in[2].Shape)
		}
	}
	return floatSpec([]int{m, n}), nil
}

func (o *gemmOp) scratch(in []*Tensor, _ int) (int, int) {
	m, k, n, err := o.dims(in)
	if err != nil {
		return 0, 0
	}
	s := packedASize(m, k) + roundUp(m, mr)
	if o.bConst == nil && o.transB {
		s += k*n + slack
	}
	return packScratch(k, n), s
}

func (o *gemmOp) run(c *ctx, in, out []*Tensor) error {
	m, k, n, err := o.dims(in)
	if err != nil {
		return err
	}
	y := out[0]
	sh := c.shared
	pa := sh[:packedASize(m, k)]
	sh = sh[len(pa):]
	bias := sh[:roundUp(m, mr)]
	clear(bias)
	sh = sh[len(bias):]
	if o.transA {
		packATrans(pa, in[0].Data, m, k, m)
	} else {
		packA(pa, in[0].Data, m, k, k)
	}
	if o.alpha != 1 {
		for i := range pa {
			pa[i] *= o.alpha
		}
	}
	bm := o.bConst
	if bm == nil || o.bShape != [2]int{k, n} {
		bm = in[1].Data
		if o.transB {
			bm = sh[:k*n+slack][:k*n]
			transpose2D(bm, in[1].Data, n, k)
		}
	}
	accumulate := false
	if len(in) > 2 && in[2] != nil && o.beta != 0 {
		if err := expandInto(in[2], y); err != nil {
			return err
		}
		if o.beta != 1 {
			for i := range y.Data {
				y.Data[i] *= o.beta
			}
		}
		accumulate = true
	}
	o.offs = rowOffsets(o.offs, k, n)
	if k == 0 {
		o.offs = o.offs[:0]
	}
	o.t = gemmTask{pa: pa, m: m, k: k, n: n, b: bm, offs: o.offs, y: y.Data, accumulate: accumulate, bias: bias}
	if len(bm) == 0 {
		o.t.b = o.zerosFor()
	}
	o.t.packFor(c, &o.poffs)
	c.runGemm(&o.t)
	o.t = gemmTask{}
	return nil
}

func (o *gemmOp) zerosFor() []float32 {
	if o.zeros == nil {
		o.zeros = newFloats(tileWidth)
	}
	return o.zeros
}

// matMulOp is MatMul with numpy semantics: batched, broadcast over leading dims, 1-D operands
// promoted and their dim removed.
type matMulOp struct {
	offs  []int32
	poffs []int32
	zeros []float32
	t     gemmTask
}

func matMulShapes(a, b []int) (m, k, n int, batch, out []int, err error) {
	if len(a) == 0 || len(b) == 0 {
		return 0, 0, 0, nil, nil, fmt.Errorf("MatMul of scalars")
	}
	aa, bb := a, b
	if len(a) == 1 {
		aa = []int{1, a[0]}
	}
	if len(b) == 1 {
		bb = []int{b[0], 1}
	}
	m, k = aa[len(aa)-2], aa[len(aa)-1]
	kb, n := bb[len(bb)-2], bb[len(bb)-1]
	if k != kb {
		return 0, 0, 0, nil, nil, fmt.Errorf("shapes %v and %v do not multiply", a, b)
	}
	batch, err = broadcastShape(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return 0, 0, 0, nil, nil, err
	}
	out = append([]int{}, batch...)
	if len(a) > 1 {
		out = append(out, m)
	}
	if len(b) > 1 {
		out = append(out, n)
	}
	return m, k, n, batch, out, nil
}

func (o *matMulOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil || in[0].IsInt() || in[1].IsInt() {
		return nil, fmt.Errorf("wants 2 float inputs")
	}
	_, _, _, _, out, err := matMulShapes(in[0].Shape, in[1].Shape)
	if err != nil {
		return nil, err
	}
	return floatSpec(out), nil
}

func (o *matMulOp) scratch(in []*Tensor, _ int) (int, int) {
	m, k, n, _, _, err := matMulShapes(in[0].Shape, in[1].Shape)
	if err != nil {
		return 0, 0
	}
	return packScratch(k, n), packedASize(m, k) + roundUp(m, mr)
}

func (o *matMulOp) run(c *ctx, in, out []*Tensor) error {
	a, b, y := in[0], in[1], out[0]
	m, k, n, batch, _, err := matMulShapes(a.Shape, b.Shape)
	if err != nil {
		return err
	}
	pa := c.shared[:packedASize(m, k)]
	bias := c.shared[len(pa) : len(pa)+roundUp(m, mr)]
	clear(bias)
	aBatch := a.Shape[:max(0, len(a.Shape)-2)]
	bBatch := b.Shape[:max(0, len(b.Shape)-2)]
	l, err := makeBcast(batch, aBatch, bBatch)
	if err != nil {
		return err
	}
	o.offs = rowOffsets(o.offs, k, n)
	bd := b.Data
	if len(bd) == 0 {
		if o.zeros == nil {
			o.zeros = newFloats(tileWidth)
		}
		bd = o.zeros
	}
	nb := numel(batch)
	for i := 0; i < nb; i++ {
		r, j := i/l.inner, i%l.inner
		oa, ob := l.offsets(r)
		oa, ob = (oa+j*l.isa)*m*k, (ob+j*l.isb)*k*n
		packA(pa, a.Data[oa:], m, k, k)
		o.t = gemmTask{pa: pa, m: m, k: k, n: n, b: bd, boff: ob, offs: o.offs, y: y.Data, yoff: i * m * n, bias: bias}
		o.t.packFor(c, &o.poffs)
		c.runGemm(&o.t)
	}
	o.t = gemmTask{}
	return nil
}

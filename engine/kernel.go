package engine

import "unsafe"

// The GEMM micro-kernel computes one tile of C = A·B for 4 rows of A and up to nr (24, 16 or 8)
// columns of B, over k steps, then applies the epilogue of a fused conv: + bias per row,
// + a residual tile (optional), clamp to [lo, hi] (Relu, Relu6/Clip; ±Inf when none).
//
// A is packed: 4 floats per step (rows 0..3 of one column of A). B is read at b + offs[p] + j
// for step p and column j, so the same kernel runs a plain GEMM (offs[p] = p·ldb), a packed panel
// (offs[p] = p·nr) and a stride-1 convolution straight from the (padded) input image
// (offs[p] = the input offset of tap p), which is what lets convs skip im2col.
//
// Reads may run past column ncols up to the kernel width and past the last row of B; every buffer
// the engine hands to a kernel has slack floats after its end for that (see newSlack).

// mr is the number of A rows per micro-tile.
const mr = 4

// slack is the number of spare floats kept after every buffer a kernel reads.
const slack = 32

// kargs is the micro-kernel's argument block; the assembly reads it at fixed offsets.
type kargs struct {
	a     *float32 // 0: packed A panel, k×4
	b     *float32 // 8: B base for this tile
	offs  *int32   // 16: k element offsets from b
	k     int      // 24
	c     *float32 // 32: C row 0 of this tile
	ldc   int      // 40: elements between C rows
	res   *float32 // 48: residual row 0 (nil: none)
	ldr   int      // 56
	bias  *float32 // 64: 4 values
	ncols int      // 72: valid columns, 1..nr
	mrows int      // 80: valid rows, 1..4
	lo    float32  // 88
	hi    float32  // 92
}

// kernelGo is the portable micro-kernel (used where the assembly one cannot run).
func kernelGo(p *kargs, nr int) {
	var acc [mr][24]float32
	if p.k > 0 {
		a := unsafe.Slice(p.a, p.k*mr)
		offs := unsafe.Slice(p.offs, p.k)
		for s, off := range offs {
			brow := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.b), uintptr(off)*4)), nr)
			a0, a1, a2, a3 := a[s*4], a[s*4+1], a[s*4+2], a[s*4+3]
			for j, bv := range brow {
				acc[0][j] += a0 * bv
				acc[1][j] += a1 * bv
				acc[2][j] += a2 * bv
				acc[3][j] += a3 * bv
			}
		}
	}
	bias := unsafe.Slice(p.bias, mr)
	for i := 0; i < p.mrows; i++ {
		c := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.c), uintptr(i*p.ldc)*4)), p.ncols)
		var r []float32
		if p.res != nil {
			r = unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.res), uintptr(i*p.ldr)*4)), p.ncols)
		}
		for j := range c {
			v := acc[i][j] + bias[i]
			if r != nil {
				v += r[j]
			}
			if v < p.lo {
				v = p.lo
			}
			if v > p.hi {
				v = p.hi
			}
			c[j] = v
		}
	}
}

// kern48Go is the portable full 4×48 tile: two 24-column tiles.
func kern48Go(p *kargs) {
	q := *p
	q.ncols = 24
	kernelGo(&q, 24)
	q.b = (*float32)(unsafe.Add(unsafe.Pointer(p.b), 24*4))
	q.c = (*float32)(unsafe.Add(unsafe.Pointer(p.c), 24*4))
	if p.res != nil {
		q.res = (*float32)(unsafe.Add(unsafe.Pointer(p.res), 24*4))
	}
	kernelGo(&q, 24)
}

// kernel runs the widest micro-kernel that covers p.ncols columns (≤ 24).
func kernel(p *kargs) {
	switch {
	case p.ncols > 16:
		kern24(p)
	case p.ncols > 8:
		kern16(p)
	default:
		kern8(p)
	}
}

// segArgs is the argument block of the segment micro-kernel: a 4×24 tile whose columns are three
// segments of up to 8 columns, each read from its own B base and written to its own C (and
// residual) place; all share the offset table, the row stride ldc and the epilogue.
type segArgs struct {
	a     *float32    // 0
	offs  *int32      // 8
	k     int         // 16
	ldc   int         // 24: elements between rows of C (and of the residual)
	bias  *float32    // 32
	lo    float32     // 40
	hi    float32     // 44
	b     [3]*float32 // 48
	c     [3]*float32 // 72
	res   [3]*float32 // 96: nil when no residual
	n     [3]int      // 120: valid columns per segment, 0..8, or 0..16 for kernSeg16 (0: not stored)
	mrows int         // 144
	// A 16-column segment may hold two output rows of a narrow map: lanes [0, n) go to c and lanes
	// [skip, skip+n2) to c + n - skip (the next output row, which follows in C).
	n2    [3]int // 152: valid columns of the second row (0: none)
	skip  int    // 176: lane where the second row starts
	mask  [3]int // 184: opmask of lanes [0, n), set by setMasks
	mask2 [3]int // 208: opmask of lanes [skip, skip+n2)
}

// setMasks fills the opmasks of the AVX-512 segment kernel from n, n2 and skip.
func (p *segArgs) setMasks() {
	for v := 0; v < 3; v++ {
		p.mask[v] = 1<<p.n[v] - 1
		p.mask2[v] = (1<<p.n2[v] - 1) << p.skip
	}
}

// kernelSegGo is the portable segment kernel with segments of 8 columns.
func kernelSegGo(p *segArgs) { kernelSegWidthGo(p, 8) }

// kernelSegWidthGo is the portable segment kernel with segments of up to width (8 or 16) columns.
func kernelSegWidthGo(p *segArgs, width int) {
	var acc [mr][3 * 16]float32
	if p.k > 0 {
		a := unsafe.Slice(p.a, p.k*mr)
		offs := unsafe.Slice(p.offs, p.k)
		for s, off := range offs {
			a0, a1, a2, a3 := a[s*4], a[s*4+1], a[s*4+2], a[s*4+3]
			for v := 0; v < 3; v++ {
				brow := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.b[v]), uintptr(off)*4)), width)
				for j, bv := range brow {
					acc[0][v*width+j] += a0 * bv
					acc[1][v*width+j] += a1 * bv
					acc[2][v*width+j] += a2 * bv
					acc[3][v*width+j] += a3 * bv
				}
			}
		}
	}
	bias := unsafe.Slice(p.bias, mr)
	for i := 0; i < p.mrows; i++ {
		for v := 0; v < 3; v++ {
			count := p.n[v] + p.n2[v]
			if count == 0 {
				continue
			}
			c := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.c[v]), uintptr(i*p.ldc)*4)), count)
			var r []float32
			if p.res[v] != nil {
				r = unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.res[v]), uintptr(i*p.ldc)*4)), count)
			}
			for j := range c {
				lane := j
				if j >= p.n[v] {
					lane = p.skip + j - p.n[v]
				}
				x := acc[i][v*width+lane] + bias[i]
				if r != nil {
					x += r[j]
				}
				c[j] = min(max(x, p.lo), p.hi)
			}
		}
	}
}

// dwArgs is the argument block of the depthwise row kernel:
// dst[j] = clamp(bias + Σ_t w[t]·src[offs[t]+j], lo, hi) for j < n.
type dwArgs struct {
	dst  *float32 // 0
	src  *float32 // 8
	offs *int32   // 16
	w    *float32 // 24
	taps int      // 32
	n    int      // 40
	bias float32  // 48
	lo   float32  // 52
	hi   float32  // 56
}

// dwRowGo is the portable depthwise row kernel.
func dwRowGo(p *dwArgs) {
	dst := unsafe.Slice(p.dst, p.n)
	offs := unsafe.Slice(p.offs, p.taps)
	w := unsafe.Slice(p.w, p.taps)
	for j := range dst {
		dst[j] = p.bias
	}
	for t, off := range offs {
		src := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(p.src), uintptr(off)*4)), p.n)
		wt := w[t]
		for j, v := range src {
			dst[j] += wt * v
		}
	}
	for j, v := range dst {
		dst[j] = min(max(v, p.lo), p.hi)
	}
}

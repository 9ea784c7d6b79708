package engine

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// mm computes dst (+)= alpha·op(a)·op(b) on the GEMM kernel, with its buffers kept for reuse.
type mm struct {
	pa, bt, bias []float32
	offs         []int32
	t            gemmTask
}

func grow(buf []float32, n int) []float32 {
	if cap(buf) < n+slack {
		return make([]float32, n, n+slack)
	}
	return buf[:n]
}

// mul computes dst[m×n] = alpha·op(a)·op(b) (+ dst when acc), where op(a) is m×k (a is stored
// k×m when transA) and op(b) is k×n (b is stored n×k when transB).
func (o *mm) mul(c *ctx, dst []float32, acc bool, alpha float32, a []float32, transA bool, b []float32, transB bool, m, k, n int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			clear(dst[:m*n])
		}
		return
	}
	o.pa = grow(o.pa, packedASize(m, k))
	if transA {
		packATrans(o.pa, a, m, k, m)
	} else {
		packA(o.pa, a, m, k, k)
	}
	if alpha != 1 {
		for i := range o.pa {
			o.pa[i] *= alpha
		}
	}
	if transB {
		o.bt = grow(o.bt, k*n)
		transpose2D(o.bt, b[:n*k], n, k)
		b = o.bt
	}
	o.bias = grow(o.bias, roundUp(m, mr))
	clear(o.bias)
	if cap(o.offs) < k {
		o.offs = make([]int32, k)
	}
	o.offs = rowOffsets(o.offs, k, n)
	o.t = gemmTask{pa: o.pa, m: m, k: k, n: n, b: b, offs: o.offs, y: dst, accumulate: acc, bias: o.bias}
	c.runGemm(&o.t)
	o.t = gemmTask{}
}

// gemmGrad is Gemm's backward (alpha, beta, transA, transB, C broadcast to [M, N]).
type gemmGrad struct {
	alpha, beta    float32
	transA, transB bool
	mm             mm
}

func newGemmGrad(n *onnx.Node) *gemmGrad {
	return &gemmGrad{alpha: n.Float("alpha", 1), beta: n.Float("beta", 1), transA: n.Int("transA", 0) != 0,
		transB: n.Int("transB", 0) != 0}
}

func (o *gemmGrad) backward(c *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	A, B := a.in[0], a.in[1]
	if len(A.Shape) != 2 || len(B.Shape) != 2 {
		return fmt.Errorf("A %v and B %v must be matrices", A.Shape, B.Shape)
	}
	m, n := dy.Shape[0], dy.Shape[1]
	k := A.Shape[1]
	if o.transA {
		k = A.Shape[0]
	}
	if dA := a.din[0]; dA != nil {
		if !o.transA { // dA[m×k] = α·dY·op(B)ᵀ
			o.mm.mul(c, dA.Data, a.acc[0], o.alpha, dy.Data, false, B.Data, !o.transB, m, n, k)
		} else { // dA[k×m] = α·op(B)·dYᵀ
			o.mm.mul(c, dA.Data, a.acc[0], o.alpha, B.Data, o.transB, dy.Data, true, k, n, m)
		}
	}
	if dB := a.din[1]; dB != nil {
		if !o.transB { // dB[k×n] = α·op(A)ᵀ·dY
			o.mm.mul(c, dB.Data, a.acc[1], o.alpha, A.Data, !o.transA, dy.Data, false, k, m, n)
		} else { // dB[n×k] = α·dYᵀ·op(A)
			o.mm.mul(c, dB.Data, a.acc[1], o.alpha, dy.Data, true, A.Data, o.transA, n, m, k)
		}
	}
	if len(a.din) > 2 && a.din[2] != nil && o.beta != 0 {
		return reduceInto(a.din[2], dy, o.beta, a.acc[2])
	} else if len(a.din) > 2 && a.din[2] != nil && !a.acc[2] {
		clear(a.din[2].Data)
	}
	return nil
}

// matMulGrad is MatMul's backward: per batch dA = dY·Bᵀ and dB = Aᵀ·dY, summed over the batch
// dims an operand was broadcast along. 1-D operands are handled as 1×K and K×1 matrices.
type matMulGrad struct{ mm mm }

func (o *matMulGrad) backward(c *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	A, B := a.in[0], a.in[1]
	m, k, n, batch, _, err := matMulShapes(A.Shape, B.Shape)
	if err != nil {
		return err
	}
	aBatch := A.Shape[:max(0, len(A.Shape)-2)]
	bBatch := B.Shape[:max(0, len(B.Shape)-2)]
	l, err := makeBcast(batch, aBatch, bBatch)
	if err != nil {
		return err
	}
	nb := numel(batch)
	dA, dB := a.din[0], a.din[1]
	// broadcast operands sum over batches: start from zero and accumulate
	sumA := dA != nil && numel(aBatch) != nb
	sumB := dB != nil && numel(bBatch) != nb
	if sumA {
		zeroUnlessAcc(dA, a.acc[0])
	}
	if sumB {
		zeroUnlessAcc(dB, a.acc[1])
	}
	for i := 0; i < nb; i++ {
		r, j := i/l.inner, i%l.inner
		oa, ob := l.offsets(r)
		oa, ob = (oa+j*l.isa)*m*k, (ob+j*l.isb)*k*n
		g := dy.Data[i*m*n : (i+1)*m*n]
		if dA != nil {
			o.mm.mul(c, dA.Data[oa:oa+m*k], sumA || a.acc[0], 1, g, false, B.Data[ob:ob+k*n], true, m, n, k)
		}
		if dB != nil {
			o.mm.mul(c, dB.Data[ob:ob+k*n], sumB || a.acc[1], 1, A.Data[oa:oa+m*k], true, g, false, k, m, n)
		}
	}
	return nil
}

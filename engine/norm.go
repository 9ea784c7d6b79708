package engine

import (
	"fmt"
	"math"
)

// batchNormOp is BatchNormalization at inference: y = scale·(x − mean)/√(var + ε) + B per channel.
type batchNormOp struct {
	eps      float32
	lo, hi   float32   // a fused Relu/Clip (±Inf when none)
	mul, add []float32 // per channel, when the parameters are constants
	x, y     []float32
	plane, c int
	rt       rangeTask
}

func buildBatchNorm(b *builder) (op, error) {
	n := b.n
	if n.Int("training_mode", 0) != 0 {
		return nil, fmt.Errorf("training mode is not supported")
	}
	if b.opset < 9 && n.Int("is_test", 1) == 0 && len(n.Outputs) > 1 {
		return nil, fmt.Errorf("training mode is not supported")
	}
	if len(n.Outputs) > 1 && anyNonEmpty(n.Outputs[1:]) {
		return nil, fmt.Errorf("the running mean/variance outputs (training mode) are not supported")
	}
	o := &batchNormOp{eps: n.Float("epsilon", 1e-5), lo: negInf, hi: posInf}
	o.rt.fn = o.apply
	var p [4]*Tensor
	for i := range p {
		if p[i] = b.konst(i + 1); p[i] == nil || p[i].IsInt() {
			return o, nil
		}
	}
	mul, add, err := bnCoefficients(p[0].Data, p[1].Data, p[2].Data, p[3].Data, o.eps)
	if err != nil {
		return nil, err
	}
	o.mul, o.add = mul, add
	return o, nil
}

// bnCoefficients turns BN parameters into y = mul·x + add per channel.
func bnCoefficients(scale, bias, mean, variance []float32, eps float32) (mul, add []float32, err error) {
	c := len(scale)
	if len(bias) != c || len(mean) != c || len(variance) != c {
		return nil, nil, fmt.Errorf("parameters have %d, %d, %d and %d values", len(scale), len(bias), len(mean), len(variance))
	}
	mul, add = make([]float32, c), make([]float32, c)
	for i := range mul {
		s := float64(scale[i]) / math.Sqrt(float64(variance[i])+float64(eps))
		mul[i] = float32(s)
		add[i] = float32(float64(bias[i]) - float64(mean[i])*s)
	}
	return mul, add, nil
}

func (o *batchNormOp) inPlace() bool { return true }

func (o *batchNormOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) < 5 || in[0] == nil || in[0].IsInt() || len(in[0].Shape) < 2 {
		return nil, fmt.Errorf("wants X of rank ≥ 2 and 4 parameters")
	}
	c := in[0].Shape[1]
	for i := 1; i < 5; i++ {
		if in[i] == nil || in[i].Len() != c {
			return nil, fmt.Errorf("parameter %d must have %d values", i, c)
		}
	}
	return floatSpec(in[0].Shape), nil
}

func (o *batchNormOp) run(c *ctx, in, out []*Tensor) error {
	x := in[0]
	o.c = x.Shape[1]
	o.plane = numel(x.Shape[2:])
	mul, add := o.mul, o.add
	if mul == nil {
		var err error
		if mul, add, err = bnCoefficients(in[1].Data, in[2].Data, in[3].Data, in[4].Data, o.eps); err != nil {
			return err
		}
	}
	saveM, saveA := o.mul, o.add
	o.mul, o.add, o.x, o.y = mul, add, x.Data, out[0].Data
	c.parallelRange(x.Shape[0]*o.c, x.Len(), &o.rt)
	o.mul, o.add = saveM, saveA
	return nil
}

func (o *batchNormOp) apply(lo, hi int) {
	for i := lo; i < hi; i++ {
		m, a := o.mul[i%o.c], o.add[i%o.c]
		x, y := o.x[i*o.plane:(i+1)*o.plane], o.y[i*o.plane:(i+1)*o.plane]
		if o.lo == negInf && o.hi == posInf {
			for j, v := range x {
				y[j] = v*m + a
			}
			continue
		}
		lo, hi := o.lo, o.hi
		for j, v := range x {
			y[j] = min(max(v*m+a, lo), hi)
		}
	}
}

// instanceNormOp normalises each (image, channel) plane, then scales and shifts per channel.
type instanceNormOp struct{ eps float32 }

func (o *instanceNormOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 3 || in[0] == nil || in[0].IsInt() || len(in[0].Shape) < 3 {
		return nil, fmt.Errorf("wants X of rank ≥ 3, scale and B")
	}
	c := in[0].Shape[1]
	if in[1] == nil || in[2] == nil || in[1].Len() != c || in[2].Len() != c {
		return nil, fmt.Errorf("scale and B must have %d values", c)
	}
	return floatSpec(in[0].Shape), nil
}

func (o *instanceNormOp) run(_ *ctx, in, out []*Tensor) error {
	x, scale, bias, y := in[0], in[1].Data, in[2].Data, out[0]
	c := x.Shape[1]
	plane := numel(x.Shape[2:])
	for i := 0; i < x.Shape[0]*c; i++ {
		xs, ys := x.Data[i*plane:(i+1)*plane], y.Data[i*plane:(i+1)*plane]
		var sum float64
		for _, v := range xs {
			sum += float64(v)
		}
		mean := sum / float64(plane)
		var ss float64
		for _, v := range xs {
			d := float64(v) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(plane)+float64(o.eps))
		s := float64(scale[i%c]) * inv
		b := float64(bias[i%c]) - mean*s
		for j, v := range xs {
			ys[j] = float32(float64(v)*s + b)
		}
	}
	return nil
}

// lrnOp is local response normalisation across channels.
type lrnOp struct {
	size              int
	alpha, beta, bias float32
}

func (o *lrnOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) != 1 || in[0] == nil || in[0].IsInt() || len(in[0].Shape) < 3 || o.size < 1 {
		return nil, fmt.Errorf("wants X of rank ≥ 3 and size ≥ 1")
	}
	return floatSpec(in[0].Shape), nil
}

func (o *lrnOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	n, c := x.Shape[0], x.Shape[1]
	plane := numel(x.Shape[2:])
	lo, hi := (o.size-1)/2, o.size/2 // floor and ceil of (size-1)/2
	for b := 0; b < n; b++ {
		for ch := 0; ch < c; ch++ {
			for p := 0; p < plane; p++ {
				var ss float64
				for k := max(0, ch-lo); k <= min(c-1, ch+hi); k++ {
					v := float64(x.Data[(b*c+k)*plane+p])
					ss += v * v
				}
				i := (b*c+ch)*plane + p
				y.Data[i] = float32(float64(x.Data[i]) / math.Pow(float64(o.bias)+float64(o.alpha)/float64(o.size)*ss, float64(o.beta)))
			}
		}
	}
	return nil
}

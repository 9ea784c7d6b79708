package engine

import (
	"fmt"
	"math"
)

// resizeOp is Resize (opset 10+) and Upsample: nearest, (n-)linear and cubic interpolation with
// the coordinate transformation and nearest rounding modes of ONNX.
type resizeOp struct {
	mode        string // nearest, linear, cubic
	coord       string
	nearest     string
	cubicA      float64
	exclude     bool
	extrapolate float32
	roi         []float32
	scales      []float32
	sizes       []int64
	// input positions of run-time roi, scales and sizes (-1: none)
	roiIn, scalesIn, sizesIn int
}

func buildResize(b *builder) (op, error) {
	n := b.n
	o := &resizeOp{mode: n.String("mode", "nearest"), coord: n.String("coordinate_transformation_mode", "half_pixel"),
		nearest: n.String("nearest_mode", "round_prefer_floor"), cubicA: float64(n.Float("cubic_coeff_a", -0.75)),
		exclude: n.Int("exclude_outside", 0) != 0, extrapolate: n.Float("extrapolation_value", 0),
		roi: n.Floats("roi"), scales: n.Floats("scales"), sizes: n.Ints("sizes"), roiIn: -1, scalesIn: -1, sizesIn: -1}
	if n.Int("antialias", 0) != 0 {
		return nil, fmt.Errorf("antialias is not supported")
	}
	if n.Has("axes") {
		return nil, fmt.Errorf("the axes attribute is not supported")
	}
	if p := n.String("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return nil, fmt.Errorf("keep_aspect_ratio_policy %q is not supported", p)
	}
	switch {
	case n.OpType == "Upsample" || b.opset < 11:
		// Upsample and Resize-10: scales (attribute or input 1), asymmetric coordinates,
		// nearest rounds down
		o.coord, o.nearest = "asymmetric", "floor"
		if len(n.Inputs) > 1 {
			o.scalesIn = 1
		}
	default:
		if len(n.Inputs) > 1 && n.Inputs[1] != "" {
			o.roiIn = 1
		}
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			o.scalesIn = 2
		}
		if len(n.Inputs) > 3 && n.Inputs[3] != "" {
			o.sizesIn = 3
		}
	}
	switch o.mode {
	case "nearest", "linear", "cubic":
	case "bilinear": // Upsample-7 spelling
		o.mode = "linear"
	default:
		return nil, fmt.Errorf("mode %q is not supported", o.mode)
	}
	switch o.coord {
	case "half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn",
		"tf_crop_and_resize", "half_pixel_symmetric":
	default:
		return nil, fmt.Errorf("coordinate_transformation_mode %q is not supported", o.coord)
	}
	return o, nil
}

// params returns the output shape, the scale per dim and the roi (start…, end…) per dim.
func (o *resizeOp) params(in []*Tensor) (shape []int, scales, roi, outLen []float64, err error) {
	x := in[0]
	r := len(x.Shape)
	sc, sz, ro := o.scales, o.sizes, o.roi
	floats := func(i int) ([]float32, error) {
		if i < 0 || i >= len(in) || in[i] == nil {
			return nil, nil
		}
		t := in[i]
		if t.IsInt() {
			f := make([]float32, len(t.Ints))
			for j, v := range t.Ints {
				f[j] = float32(v)
			}
			return f, nil
		}
		return t.Data, nil
	}
	if v, e := floats(o.scalesIn); e != nil {
		return nil, nil, nil, nil, e
	} else if v != nil {
		sc = v
	}
	if v, e := floats(o.roiIn); e != nil {
		return nil, nil, nil, nil, e
	} else if v != nil {
		ro = v
	}
	if o.sizesIn >= 0 && o.sizesIn < len(in) && in[o.sizesIn] != nil {
		if sz, err = intsOf(in[o.sizesIn], "sizes"); err != nil {
			return
		}
	}
	shape, scales, outLen = make([]int, r), make([]float64, r), make([]float64, r)
	roi = make([]float64, 2*r)
	for i := 0; i < r; i++ {
		roi[r+i] = 1
	}
	if len(ro) == 2*r {
		for i := range roi {
			roi[i] = float64(ro[i])
		}
	}
	switch {
	case len(sz) > 0:
		if len(sz) != r {
			return nil, nil, nil, nil, fmt.Errorf("sizes %v for rank %d", sz, r)
		}
		for i := range shape {
			shape[i] = int(sz[i])
			outLen[i] = float64(sz[i])
			if x.Shape[i] > 0 {
				scales[i] = float64(sz[i]) / float64(x.Shape[i])
			}
		}
	case len(sc) > 0:
		if len(sc) != r {
			return nil, nil, nil, nil, fmt.Errorf("scales %v for rank %d", sc, r)
		}
		for i := range shape {
			scales[i] = float64(sc[i])
			if scales[i] <= 0 {
				return nil, nil, nil, nil, fmt.Errorf("scales %v must be positive", sc)
			}
			span := 1.0
			if o.coord == "tf_crop_and_resize" {
				span = roi[r+i] - roi[i]
			}
			// the coordinate transforms use the unrounded output length
			outLen[i] = float64(x.Shape[i]) * span * scales[i]
			shape[i] = int(math.Floor(outLen[i]))
		}
	default:
		return nil, nil, nil, nil, fmt.Errorf("neither scales nor sizes given")
	}
	return shape, scales, roi, outLen, nil
}

func (o *resizeOp) infer(in []*Tensor) ([]spec, error) {
	if len(in) == 0 || in[0] == nil || in[0].IsInt() {
		return nil, fmt.Errorf("wants a float input")
	}
	shape, _, _, _, err := o.params(in)
	if err != nil {
		return nil, err
	}
	return floatSpec(shape), nil
}

// taps is the interpolation of one output index along one dim: input indices and weights.
type taps struct {
	idx     [4]int
	w       [4]float64
	n       int
	outside bool // tf_crop_and_resize: the point lies outside the input
}

func (o *resizeOp) original(x float64, scale float64, inLen int, outLen float64, roiS, roiE float64) float64 {
	switch o.coord {
	case "asymmetric":
		return x / scale
	case "align_corners":
		if outLen <= 1 {
			return 0
		}
		return x * float64(inLen-1) / (outLen - 1)
	case "pytorch_half_pixel":
		if outLen <= 1 {
			return 0
		}
		return (x+0.5)/scale - 0.5
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale
	case "tf_crop_and_resize":
		if outLen <= 1 {
			return 0.5 * (roiS + roiE) * float64(inLen-1)
		}
		return roiS*float64(inLen-1) + x*(roiE-roiS)*float64(inLen-1)/(outLen-1)
	case "half_pixel_symmetric":
		adj := outLen / (scale * float64(inLen))
		center := float64(inLen) / 2
		return center*(1-adj) + (x+0.5)/scale - 0.5
	}
	return (x+0.5)/scale - 0.5 // half_pixel
}

func (o *resizeOp) dimTaps(inLen, outN int, outLen, scale, roiS, roiE float64) []taps {
	t := make([]taps, outN)
	for i := range t {
		x := o.original(float64(i), scale, inLen, outLen, roiS, roiE)
		tp := &t[i]
		if o.coord == "tf_crop_and_resize" && (x < 0 || x > float64(inLen-1)) {
			tp.outside = true
		}
		clampI := func(v int) int { return max(0, min(v, inLen-1)) }
		switch o.mode {
		case "nearest":
			var v float64
			switch o.nearest {
			case "floor":
				v = math.Floor(x)
			case "ceil":
				v = math.Ceil(x)
			case "round_prefer_ceil":
				v = math.Floor(x + 0.5)
			default: // round_prefer_floor
				v = math.Ceil(x - 0.5)
			}
			tp.n, tp.idx[0], tp.w[0] = 1, clampI(int(v)), 1
		case "linear":
			x0 := math.Floor(x)
			r := x - x0
			tp.n = 2
			tp.idx[0], tp.idx[1] = clampI(int(x0)), clampI(int(x0)+1)
			tp.w[0], tp.w[1] = 1-r, r
		case "cubic":
			x0 := math.Floor(x)
			r := x - x0
			a := o.cubicA
			c := [4]float64{
				((a*(r+1)-5*a)*(r+1)+8*a)*(r+1) - 4*a,
				((a+2)*r-(a+3))*r*r + 1,
				((a+2)*(1-r)-(a+3))*(1-r)*(1-r) + 1,
				((a*(2-r)-5*a)*(2-r)+8*a)*(2-r) - 4*a,
			}
			tp.n = 4
			sum := 0.0
			for k := 0; k < 4; k++ {
				j := int(x0) - 1 + k
				if o.exclude && (j < 0 || j >= inLen) {
					c[k] = 0
				}
				tp.idx[k], tp.w[k] = clampI(j), c[k]
				sum += c[k]
			}
			if o.exclude && sum != 0 {
				for k := range tp.w {
					tp.w[k] /= sum
				}
			}
		}
	}
	return t
}

func (o *resizeOp) run(_ *ctx, in, out []*Tensor) error {
	x, y := in[0], out[0]
	shape, scales, roi, outLen, err := o.params(in)
	if err != nil {
		return err
	}
	r := len(shape)
	if r == 0 {
		copy(y.Data, x.Data)
		return nil
	}
	dt := make([][]taps, r)
	var active []int // dims that interpolate (not an identity copy)
	for d := 0; d < r; d++ {
		dt[d] = o.dimTaps(x.Shape[d], shape[d], outLen[d], scales[d], roi[d], roi[r+d])
		identity := shape[d] == x.Shape[d]
		for i, t := range dt[d] {
			if t.outside || t.idx[0] != i || t.w[0] != 1 || (t.n > 1 && anyNonZero(t.w[1:t.n])) {
				identity = false
			}
		}
		if !identity {
			active = append(active, d)
		} else {
			for i := range dt[d] {
				dt[d][i] = taps{idx: [4]int{i}, w: [4]float64{1}, n: 1}
			}
		}
	}
	st := strides(x.Shape)
	idx := make([]int, r)
	corner := make([]int, r)
	for i := 0; i < y.Len(); i++ {
		outside := false
		base := 0
		for d := 0; d < r; d++ {
			t := &dt[d][idx[d]]
			if t.outside {
				outside = true
			}
			if t.n == 1 {
				base += t.idx[0] * st[d]
			}
		}
		if outside {
			y.Data[i] = o.extrapolate
		} else {
			// sum over the corners of the multi-dim taps of the active dims
			var sum float64
			for k := range corner {
				corner[k] = 0
			}
			for {
				w, at := 1.0, base
				for _, d := range active {
					t := &dt[d][idx[d]]
					if t.n == 1 {
						continue
					}
					w *= t.w[corner[d]]
					at += t.idx[corner[d]] * st[d]
				}
				if w != 0 {
					sum += w * float64(x.Data[at])
				}
				// next corner
				k := len(active) - 1
				for ; k >= 0; k-- {
					d := active[k]
					if n := dt[d][idx[d]].n; n > 1 {
						corner[d]++
						if corner[d] < n {
							break
						}
						corner[d] = 0
					}
				}
				if k < 0 {
					break
				}
			}
			y.Data[i] = float32(sum)
		}
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return nil
}

func anyNonZero(w []float64) bool {
	for _, v := range w {
		if v != 0 {
			return true
		}
	}
	return false
}

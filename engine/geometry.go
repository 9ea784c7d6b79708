package engine

import "fmt"

// window describes a sliding window (conv or pool) over the spatial dims of an NC... tensor.
type window struct {
	kernel, strides, dilations []int
	pads                       []int // explicit pads: begins then ends (ignored with autoPad)
	autoPad                    string
	ceil                       bool // pools: ceil_mode
}

// outDims returns the output spatial dims and the begin/end pads actually used.
func (w *window) outDims(in []int) (out, padB, padE []int, err error) {
	r := len(in)
	if len(w.kernel) != r {
		return nil, nil, nil, fmt.Errorf("kernel has %d dims, input has %d spatial dims", len(w.kernel), r)
	}
	out, padB, padE = make([]int, r), make([]int, r), make([]int, r)
	for i := 0; i < r; i++ {
		k, s, d := w.kernel[i], 1, 1
		if i < len(w.strides) {
			s = w.strides[i]
		}
		if i < len(w.dilations) {
			d = w.dilations[i]
		}
		if k < 1 || s < 1 || d < 1 {
			return nil, nil, nil, fmt.Errorf("kernel %v, strides %v and dilations %v must be positive", w.kernel, w.strides, w.dilations)
		}
		ext := (k-1)*d + 1
		switch w.autoPad {
		case "", "NOTSET":
			if len(w.pads) == 2*r {
				padB[i], padE[i] = w.pads[i], w.pads[i+r]
			} else if len(w.pads) != 0 {
				return nil, nil, nil, fmt.Errorf("pads %v: want %d values", w.pads, 2*r)
			}
			if padB[i] < 0 || padE[i] < 0 {
				return nil, nil, nil, fmt.Errorf("negative pads %v", w.pads)
			}
			span := in[i] + padB[i] + padE[i] - ext
			if span < 0 {
				return nil, nil, nil, fmt.Errorf("window %d is larger than the padded input %d", ext, in[i]+padB[i]+padE[i])
			}
			if w.ceil {
				out[i] = (span+s-1)/s + 1
				// the last window must start inside the input or the begin padding
				if (out[i]-1)*s >= in[i]+padB[i] {
					out[i]--
				}
			} else {
				out[i] = span/s + 1
			}
		case "VALID":
			if in[i] < ext {
				return nil, nil, nil, fmt.Errorf("window %d is larger than the input %d", ext, in[i])
			}
			out[i] = (in[i]-ext)/s + 1
			if w.ceil {
				out[i] = (in[i]-ext+s-1)/s + 1
			}
		case "SAME_UPPER", "SAME_LOWER":
			out[i] = (in[i] + s - 1) / s
			total := max(0, (out[i]-1)*s+ext-in[i])
			if w.autoPad == "SAME_UPPER" {
				padB[i] = total / 2
			} else {
				padB[i] = (total + 1) / 2
			}
			padE[i] = total - padB[i]
		default:
			return nil, nil, nil, fmt.Errorf("auto_pad %q is not supported", w.autoPad)
		}
	}
	return out, padB, padE, nil
}

func ints(v []int64) []int {
	if v == nil {
		return nil
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func ones(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

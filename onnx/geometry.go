package onnx

import "fmt"

// This file is the one home of the sliding-window and slice arithmetic of the ONNX spec: shape
// inference, the engine's kernels and the optimizer's refits all call it, so an output size or a
// padding cannot be computed two ways.

// Window is the sliding-window geometry of a Conv, ConvTranspose or pool node as its attributes
// give it. Lists left nil take the ONNX defaults (stride 1, dilation 1, no padding); shorter lists
// than the kernel's rank do too, for the axes they miss.
type Window struct {
	Kernel    []int64
	Strides   []int64
	Dilations []int64
	Pads      []int64 // begins then ends; used with AutoPad NOTSET only
	AutoPad   string  // "", NOTSET, VALID, SAME_UPPER or SAME_LOWER
	CeilMode  bool    // pools: round the output size up

	// ConvTranspose only.
	OutputPadding []int64
	OutputShape   []int64 // spatial output size; when longer than the kernel's rank, its last entries
}

// NodeWindow reads a node's window attributes. kernel is kernel_shape, or the weight's spatial dims
// where the attribute is absent (Conv and ConvTranspose may leave it out).
func NodeWindow(n *Node, kernel []int64) Window {
	if k := n.Ints("kernel_shape"); k != nil {
		kernel = k
	}
	return Window{Kernel: kernel, Strides: n.Ints("strides"), Dilations: n.Ints("dilations"), Pads: n.Ints("pads"),
		AutoPad: n.String("auto_pad", "NOTSET"), CeilMode: n.Int("ceil_mode", 0) != 0,
		OutputPadding: n.Ints("output_padding"), OutputShape: n.Ints("output_shape")}
}

// Stride is the stride along spatial axis i.
func (w Window) Stride(i int) int64 { return at(w.Strides, i, 1) }

// Dilation is the dilation along spatial axis i.
func (w Window) Dilation(i int) int64 { return at(w.Dilations, i, 1) }

// Extent is the span of the dilated kernel along spatial axis i.
func (w Window) Extent(i int) int64 { return (w.Kernel[i]-1)*w.Dilation(i) + 1 }

func at(v []int64, i int, def int64) int64 {
	if i < len(v) {
		return v[i]
	}
	return def
}

// check validates the attributes shared by both directions along axis i of a rank-r window.
func (w Window) check(i, r int) error {
	if len(w.Kernel) != r {
		return fmt.Errorf("kernel %v has %d dims, input has %d spatial dims", w.Kernel, len(w.Kernel), r)
	}
	if w.Kernel[i] < 1 || w.Stride(i) < 1 || w.Dilation(i) < 1 {
		return fmt.Errorf("kernel %v, strides %v and dilations %v must be positive", w.Kernel, w.Strides, w.Dilations)
	}
	switch w.AutoPad {
	case "", "NOTSET":
		if len(w.Pads) != 0 && len(w.Pads) != 2*r {
			return fmt.Errorf("pads %v: want %d values", w.Pads, 2*r)
		}
		if at(w.Pads, i, 0) < 0 || at(w.Pads, i+r, 0) < 0 {
			return fmt.Errorf("negative pads %v", w.Pads)
		}
	case "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return fmt.Errorf("auto_pad %q is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER", w.AutoPad)
	}
	return nil
}

// Axis gives, for a Conv or pool, the output size along spatial axis i (of r) for an input of size
// in, and the begin and end padding the window actually uses there: the explicit pads for NOTSET,
// none for VALID, and for SAME_* the total that makes the output ceil(in/stride), its odd unit at
// the end (SAME_UPPER) or the beginning (SAME_LOWER).
func (w Window) Axis(i, r int, in int64) (out, padBegin, padEnd int64, err error) {
	if err := w.check(i, r); err != nil {
		return 0, 0, 0, err
	}
	s, ext := w.Stride(i), w.Extent(i)
	switch w.AutoPad {
	case "SAME_UPPER", "SAME_LOWER":
		out = (in + s - 1) / s
		total := max(0, (out-1)*s+ext-in)
		padBegin = total / 2
		if w.AutoPad == "SAME_LOWER" {
			padBegin = total - total/2
		}
		return out, padBegin, total - padBegin, nil
	case "", "NOTSET":
		padBegin, padEnd = at(w.Pads, i, 0), at(w.Pads, i+r, 0)
	}
	span := in + padBegin + padEnd - ext
	if span < 0 {
		return 0, 0, 0, fmt.Errorf("window %d is larger than the padded input %d", ext, in+padBegin+padEnd)
	}
	out = span/s + 1
	if w.CeilMode && span%s != 0 {
		out++
		// A last window that would start in the end padding is dropped (as ONNX Runtime does).
		if (out-1)*s >= in+padBegin {
			out--
		}
	}
	return out, padBegin, padEnd, nil
}

// TransposeAxis gives, for a ConvTranspose, the output size along spatial axis i (of r) for an
// input of size in, and the begin and end padding cropped from the full transposed output there.
// output_shape, when given, fixes the size and the pads follow from it; SAME_* makes the output
// in·stride; otherwise stride·(in−1) + output_padding + extent − pads.
func (w Window) TransposeAxis(i, r int, in int64) (out, padBegin, padEnd int64, err error) {
	if err := w.check(i, r); err != nil {
		return 0, 0, 0, err
	}
	s, ext, opad := w.Stride(i), w.Extent(i), at(w.OutputPadding, i, 0)
	full := s*(in-1) + opad + ext // the output before cropping
	switch {
	case len(w.OutputShape) >= r:
		out = w.OutputShape[len(w.OutputShape)-r+i]
		total := full - out
		padBegin = total / 2
		if w.AutoPad == "SAME_LOWER" {
			padBegin = total - total/2
		}
		padEnd = total - padBegin
	case w.AutoPad == "SAME_UPPER" || w.AutoPad == "SAME_LOWER":
		out = in * s
		total := full - out
		padBegin = total / 2
		if w.AutoPad == "SAME_LOWER" {
			padBegin = total - total/2
		}
		padEnd = total - padBegin
	default:
		if w.AutoPad != "VALID" {
			padBegin, padEnd = at(w.Pads, i, 0), at(w.Pads, i+r, 0)
		}
		out = full - padBegin - padEnd
	}
	if out < 0 {
		return 0, 0, 0, fmt.Errorf("output size %d along spatial axis %d is negative", out, i)
	}
	return out, padBegin, padEnd, nil
}

// Output applies Axis to every spatial dim of in (a Conv's or pool's).
func (w Window) Output(in []int64) (out, padBegin, padEnd []int64, err error) {
	return w.allAxes(in, w.Axis)
}

// TransposedOutput applies TransposeAxis to every spatial dim of in (a ConvTranspose's).
func (w Window) TransposedOutput(in []int64) (out, padBegin, padEnd []int64, err error) {
	return w.allAxes(in, w.TransposeAxis)
}

func (w Window) allAxes(in []int64, axis func(i, r int, in int64) (int64, int64, int64, error)) (out, padBegin, padEnd []int64, err error) {
	r := len(in)
	out, padBegin, padEnd = make([]int64, r), make([]int64, r), make([]int64, r)
	for i, x := range in {
		if out[i], padBegin[i], padEnd[i], err = axis(i, r, x); err != nil {
			return nil, nil, nil, err
		}
	}
	return out, padBegin, padEnd, nil
}

// SliceRange resolves one axis of a Slice the way the ONNX spec (and ONNX Runtime) clamps it:
// negative start and end count from dim; then for a positive step start and end are clamped to
// [0, dim], for a negative step start to [0, dim−1] and end to [−1, dim−1]. It returns the first
// index taken, the clamped end (exclusive) and the number of elements taken. Unlike numpy, a start
// below −dim with a negative step takes element 0 (start=−10, end=−20, step=−1 on a dim of 5 gives
// one element). Any int64 start, end and step ≠ 0 is safe: nothing overflows.
func SliceRange(start, end, step, dim int64) (first, stop, count int64) {
	if dim <= 0 {
		return 0, 0, 0
	}
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start, end = clamp(start, 0, dim), clamp(end, 0, dim)
		if end > start {
			count = (end-start-1)/step + 1
		}
	} else {
		start, end = clamp(start, 0, dim-1), clamp(end, -1, dim-1)
		if start > end {
			count = 1 - (start-end-1)/step // step < 0: the quotient is −⌊(start−end−1)/|step|⌋
		}
	}
	return start, end, count
}

func clamp(v, lo, hi int64) int64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

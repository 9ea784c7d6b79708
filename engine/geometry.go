package engine

import "github.com/chanopt/chanopt/onnx"

// window describes a sliding window (conv or pool) over the spatial dims of an NC... tensor.
type window struct {
	kernel, strides, dilations []int
	pads                       []int // explicit pads: begins then ends (ignored with autoPad)
	autoPad                    string
	ceil                       bool // pools: ceil_mode
}

// nodeWindow reads a Conv's or pool's window attributes (kernel_shape may be absent for a Conv).
func nodeWindow(n *onnx.Node) window {
	w := onnx.NodeWindow(n, nil)
	return window{kernel: ints(w.Kernel), strides: ints(w.Strides), dilations: ints(w.Dilations), pads: ints(w.Pads),
		autoPad: w.AutoPad, ceil: w.CeilMode}
}

// stride and dilation along spatial axis i (1 where the attribute is absent or shorter).
func (w *window) stride(i int) int   { return orOne(w.strides, i) }
func (w *window) dilation(i int) int { return orOne(w.dilations, i) }

func orOne(v []int, i int) int {
	if i < len(v) {
		return v[i]
	}
	return 1
}

// outDims returns the output spatial dims and the begin/end pads actually used (onnx.Window holds
// the arithmetic).
func (w *window) outDims(in []int) (out, padB, padE []int, err error) {
	ow := onnx.Window{Kernel: toInt64s(w.kernel), Strides: toInt64s(w.strides), Dilations: toInt64s(w.dilations),
		Pads: toInt64s(w.pads), AutoPad: w.autoPad, CeilMode: w.ceil}
	o, b, e, err := ow.Output(toInt64s(in))
	if err != nil {
		return nil, nil, nil, err
	}
	return ints(o), ints(b), ints(e), nil
}

func toInt64s(v []int) []int64 {
	if v == nil {
		return nil
	}
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
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

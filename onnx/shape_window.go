package onnx

import "fmt"

// This file infers the shapes of the sliding-window ops (Conv, ConvTranspose, pools); the
// window arithmetic itself is in geometry.go.

// spatialOut gives the output sizes of a Conv, ConvTranspose or pool along the spatial axes of in,
// unknown where the input's dim is.
func spatialOut(w Window, in Shape, transpose bool) (Shape, error) {
	r := len(w.Kernel)
	if len(in) != r+2 {
		return nil, fmt.Errorf("input %v does not match a %d-D kernel", in, r)
	}
	out := make(Shape, r)
	for i := range out {
		x := in[i+2]
		if !x.Known() {
			out[i] = Unknown
			if len(w.OutputShape) >= r && transpose {
				out[i] = D(w.OutputShape[len(w.OutputShape)-r+i])
			}
			continue
		}
		axis := w.Axis
		if transpose {
			axis = w.TransposeAxis
		}
		o, _, _, err := axis(i, r, x.Size)
		if err != nil {
			return nil, err
		}
		out[i] = D(o)
	}
	return out, nil
}

func (st *inferState) conv(n *Node, transpose bool) ([]typedShape, error) {
	x, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	w, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	if len(w) < 3 || len(x) != len(w) {
		return nil, fmt.Errorf("weight %v does not match input %v", w, x)
	}
	group := n.Int("group", 1)
	win := NodeWindow(n, w[2:].Sizes())
	for _, k := range win.Kernel {
		if k <= 0 {
			return nil, fmt.Errorf("kernel shape %v unknown", win.Kernel)
		}
	}
	sp, err := spatialOut(win, x, transpose)
	if err != nil {
		return nil, err
	}
	if transpose {
		outC := Unknown
		if w[1].Known() {
			outC = D(w[1].Size * group)
		}
		return one(st.dtype(n.Input(0)), append(Shape{x[0], outC}, sp...)), nil
	}
	if x[1].Known() && w[1].Known() && x[1].Size != w[1].Size*group {
		return nil, fmt.Errorf("input has %d channels, weight %v with group %d wants %d", x[1].Size, w, group, w[1].Size*group)
	}
	return one(st.dtype(n.Input(0)), append(Shape{x[0], w[0]}, sp...)), nil
}

func (st *inferState) pool(n *Node) (Shape, error) {
	x, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	if n.Ints("kernel_shape") == nil {
		return nil, fmt.Errorf("no kernel_shape")
	}
	sp, err := spatialOut(NodeWindow(n, nil), x, false)
	if err != nil {
		return nil, err
	}
	return append(Shape{x[0], x[1]}, sp...), nil
}

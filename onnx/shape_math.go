package onnx

import "fmt"

// This file infers the shapes of MatMul, the reductions and Range.

func (st *inferState) matmul(n *Node) ([]typedShape, error) {
	a, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	b, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("MatMul of a scalar")
	}
	aa, bb := a.Clone(), b.Clone()
	if len(aa) == 1 {
		aa = Shape{D(1), aa[0]}
	}
	if len(bb) == 1 {
		bb = Shape{bb[0], D(1)}
	}
	k1, k2 := aa[len(aa)-1], bb[len(bb)-2]
	if k1.Known() && k2.Known() && k1.Size != k2.Size {
		return nil, fmt.Errorf("inner dims differ: %v and %v", a, b)
	}
	batch, err := broadcast(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return nil, err
	}
	out := append(batch, aa[len(aa)-2], bb[len(bb)-1])
	if len(b) == 1 {
		out = out[:len(out)-1]
	}
	if len(a) == 1 {
		out = append(out[:len(out)-2], out[len(out)-1:]...)
		if len(b) == 1 {
			out = out[:len(out)-1]
		}
	}
	t := st.dtype(n.Input(0))
	if n.OpType == "MatMulInteger" {
		t = Int32
	}
	return one(t, out), nil
}

func (st *inferState) reduce(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	keep := n.Int("keepdims", 1) != 0
	var axes []int64
	if n.OpType == "ArgMax" || n.OpType == "ArgMin" {
		axes = []int64{n.Int("axis", 0)}
	} else {
		var ok bool
		axes, ok = st.ints(n, "axes", 1)
		if !ok && n.Input(1) != "" {
			return nil, fmt.Errorf("axes are not a known constant")
		}
	}
	red := map[int]bool{}
	if len(axes) == 0 {
		if n.Int("noop_with_empty_axes", 0) != 0 {
			return one(st.dtype(n.Input(0)), s.Clone()), nil
		}
		for i := range s {
			red[i] = true
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		red[ax] = true
	}
	out := Shape{}
	for i, d := range s {
		switch {
		case !red[i]:
			out = append(out, d)
		case keep:
			out = append(out, D(1))
		}
	}
	t := st.dtype(n.Input(0))
	if n.OpType == "ArgMax" || n.OpType == "ArgMin" {
		t = Int64
	}
	return one(t, out), nil
}

func (st *inferState) rangeOp(n *Node) ([]typedShape, error) {
	get := func(i int) (int64, bool) {
		v, ok := st.vals[n.Input(i)]
		if !ok || len(v.el) != 1 || !v.el[0].known {
			return 0, false
		}
		return v.el[0].v, true
	}
	start, ok1 := get(0)
	limit, ok2 := get(1)
	delta, ok3 := get(2)
	t := st.dtype(n.Input(0))
	if !ok1 || !ok2 || !ok3 || delta == 0 {
		return one(t, Shape{Unknown}), nil
	}
	count := (limit - start + delta - 1) / delta
	if delta < 0 {
		count = (start - limit - delta - 1) / -delta
	}
	if count < 0 {
		count = 0
	}
	return one(t, ShapeOf(count)), nil
}

// gemm is Gemm: A (M×K, or K×M with transA) times B (K×N, or N×K with transB).
func (st *inferState) gemm(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	a, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	b, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	if len(a) != 2 || len(b) != 2 {
		return nil, fmt.Errorf("Gemm wants 2-D inputs, got %v and %v", a, b)
	}
	m, k := a[0], a[1]
	if n.Int("transA", 0) != 0 {
		m, k = k, m
	}
	k2, nn := b[0], b[1]
	if n.Int("transB", 0) != 0 {
		k2, nn = nn, k2
	}
	if k.Known() && k2.Known() && k.Size != k2.Size {
		return nil, fmt.Errorf("inner dims differ: A %v, B %v", a, b)
	}
	return one(st.dtype(in0), Shape{m, nn}), nil
}

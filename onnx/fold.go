package onnx

import "fmt"

// maxFoldElements bounds the integer tensors import folds: shape arithmetic, not data.
const maxFoldElements = 4096

// foldConstantChains evaluates nodes whose inputs are all small integer constants — the
// ConstantOfShape → Concat → Reshape → Slice → Transpose → Cast chains exporters write for Pad
// amounts and Reshape targets — and replaces them by initializers, so the arguments they feed become
// constants that import lifts into attributes. It reports whether it folded anything.
func foldConstantChains(g *Graph) bool {
	folded := false
	kept := g.Nodes[:0]
	for _, n := range g.Nodes {
		outs, ok := evalIntNode(g, n)
		if !ok {
			kept = append(kept, n)
			continue
		}
		for i, t := range outs {
			t.Name = n.Outputs[i]
			g.Inits[t.Name] = t
			g.InitOrder = append(g.InitOrder, t.Name)
			g.Values[t.Name] = &Value{Name: t.Name, Type: t.Type, Shape: t.Shape()}
		}
		folded = true
	}
	g.Nodes = kept
	return folded
}

// intConst returns a small integer initializer's dims and values.
func intConst(g *Graph, name string) (*Tensor, bool) {
	t, ok := g.Inits[name]
	if !ok || t.Ints == nil || t.NumElements() > maxFoldElements {
		return nil, false
	}
	return t, true
}

func evalIntNode(g *Graph, n *Node) (outs []*Tensor, ok bool) {
	if n.Domain != "" || len(n.Outputs) != 1 || g.IsOutput(n.Outputs[0]) {
		return nil, false
	}
	defer func() {
		if recover() != nil { // malformed arguments: leave the node for inference to report
			outs, ok = nil, false
		}
	}()
	in := make([]*Tensor, len(n.Inputs))
	for i, name := range n.Inputs {
		if name == "" {
			continue
		}
		t, ok := intConst(g, name)
		if !ok {
			if n.OpType == "Cast" || n.OpType == "Shape" || n.OpType == "Size" {
				if ft, isInit := g.Inits[name]; isInit && ft.NumElements() <= maxFoldElements {
					t = ft
				} else {
					return nil, false
				}
			} else {
				return nil, false
			}
		}
		in[i] = t
	}
	if len(in) == 0 || in[0] == nil {
		return nil, false
	}
	x := in[0]
	var out *Tensor
	switch n.OpType {
	case "Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten":
		st := &inferState{g: g, vals: map[string][]Dim{}, fvals: map[string][]float32{}}
		for i, t := range in {
			if i > 0 && t != nil {
				st.vals[n.Inputs[i]] = dimsOf(t.Ints)
			}
		}
		shapes, err := st.infer(n)
		if err != nil || !shapes[0].Shape.Static() {
			return nil, false
		}
		out = &Tensor{Type: x.Type, Dims: shapes[0].Shape.Sizes(), Ints: append([]int64{}, x.Ints...)}
	case "Cast":
		to := DataType(n.Int("to", 0))
		if !to.IsInt() {
			return nil, false
		}
		out = &Tensor{Type: to, Dims: append([]int64{}, x.Dims...)}
		if x.Ints != nil {
			out.Ints = append([]int64{}, x.Ints...)
		} else if x.Floats != nil {
			for _, f := range x.Floats {
				out.Ints = append(out.Ints, int64(f))
			}
		} else {
			return nil, false
		}
	case "Shape":
		out = NewIntTensor("", []int64{int64(len(x.Dims))}, append([]int64{}, x.Dims...))
	case "Size":
		out = NewIntTensor("", []int64{}, []int64{x.NumElements()})
	case "Neg", "Abs":
		out = &Tensor{Type: x.Type, Dims: append([]int64{}, x.Dims...)}
		for _, v := range x.Ints {
			if n.OpType == "Neg" || v < 0 {
				v = -v
			}
			out.Ints = append(out.Ints, v)
		}
	case "Add", "Sub", "Mul", "Div":
		if len(in) != 2 || in[1] == nil {
			return nil, false
		}
		out = broadcastInts(x, in[1], func(a, b int64) int64 {
			switch n.OpType {
			case "Add":
				return a + b
			case "Sub":
				return a - b
			case "Mul":
				return a * b
			}
			if b == 0 {
				panic("division by zero")
			}
			q := a / b
			if (a%b != 0) && ((a < 0) != (b < 0)) {
				q-- // ONNX integer Div truncates toward zero like C; keep that
				q++
			}
			return q
		})
	case "Transpose":
		perm := n.Ints("perm")
		if perm == nil {
			for i := len(x.Dims) - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		out = transposeInts(x, perm)
	case "Concat":
		axis := n.Int("axis", 0)
		if axis < 0 {
			axis += int64(len(x.Dims))
		}
		out = concatInts(in, int(axis))
	case "Slice":
		starts, ends := n.Ints("starts"), n.Ints("ends")
		axes, steps := n.Ints("axes"), n.Ints("steps")
		if len(in) > 1 && in[1] != nil && in[2] != nil {
			starts, ends = in[1].Ints, in[2].Ints
			if len(in) > 3 && in[3] != nil {
				axes = in[3].Ints
			}
			if len(in) > 4 && in[4] != nil {
				steps = in[4].Ints
			}
		}
		if starts == nil || ends == nil {
			return nil, false
		}
		out = sliceInts(x, starts, ends, axes, steps)
	case "Gather":
		if len(in) != 2 || in[1] == nil || len(x.Dims) != 1 {
			return nil, false
		}
		out = &Tensor{Type: x.Type, Dims: append([]int64{}, in[1].Dims...)}
		for _, i := range in[1].Ints {
			if i < 0 {
				i += x.Dims[0]
			}
			out.Ints = append(out.Ints, x.Ints[i])
		}
	case "ConstantOfShape":
		count := int64(1)
		for _, d := range x.Ints {
			count *= d
		}
		if count > maxFoldElements {
			return nil, false
		}
		v, t := int64(0), DataType(Float)
		if a, ok := n.Attrs["value"]; ok && a.T != nil {
			t = a.T.Type
			if a.T.Ints == nil || len(a.T.Ints) != 1 {
				return nil, false
			}
			v = a.T.Ints[0]
		}
		if !t.IsInt() {
			return nil, false
		}
		out = &Tensor{Type: t, Dims: append([]int64{}, x.Ints...), Ints: make([]int64, count)}
		for i := range out.Ints {
			out.Ints[i] = v
		}
	default:
		return nil, false
	}
	if out == nil || out.NumElements() != int64(len(out.Ints)) {
		return nil, false
	}
	return []*Tensor{out}, true
}

// strides returns row-major strides.
func strides(dims []int64) []int64 {
	s := make([]int64, len(dims))
	acc := int64(1)
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

func broadcastInts(a, b *Tensor, f func(x, y int64) int64) *Tensor {
	rank := len(a.Dims)
	if len(b.Dims) > rank {
		rank = len(b.Dims)
	}
	pad := func(d []int64) []int64 {
		out := make([]int64, rank)
		for i := range out {
			out[i] = 1
		}
		copy(out[rank-len(d):], d)
		return out
	}
	ad, bd := pad(a.Dims), pad(b.Dims)
	dims := make([]int64, rank)
	for i := range dims {
		dims[i] = ad[i]
		if bd[i] != 1 {
			if ad[i] != 1 && ad[i] != bd[i] {
				panic(fmt.Sprintf("cannot broadcast %v and %v", a.Dims, b.Dims))
			}
			dims[i] = bd[i]
		}
	}
	as, bs, os := strides(ad), strides(bd), strides(dims)
	out := &Tensor{Type: a.Type, Dims: dims}
	total := int64(1)
	for _, d := range dims {
		total *= d
	}
	for flat := int64(0); flat < total; flat++ {
		var ai, bi int64
		for i := range dims {
			c := flat / os[i] % dims[i]
			if ad[i] != 1 {
				ai += c * as[i]
			}
			if bd[i] != 1 {
				bi += c * bs[i]
			}
		}
		out.Ints = append(out.Ints, f(a.Ints[ai], b.Ints[bi]))
	}
	return out
}

func transposeInts(x *Tensor, perm []int64) *Tensor {
	dims := make([]int64, len(perm))
	for i, p := range perm {
		dims[i] = x.Dims[p]
	}
	xs, os := strides(x.Dims), strides(dims)
	out := &Tensor{Type: x.Type, Dims: dims, Ints: make([]int64, len(x.Ints))}
	for flat := range out.Ints {
		var src int64
		for i := range dims {
			c := int64(flat) / os[i] % dims[i]
			src += c * xs[perm[i]]
		}
		out.Ints[flat] = x.Ints[src]
	}
	return out
}

func concatInts(in []*Tensor, axis int) *Tensor {
	first := in[0]
	dims := append([]int64{}, first.Dims...)
	dims[axis] = 0
	for _, t := range in {
		if t != nil {
			dims[axis] += t.Dims[axis]
		}
	}
	outer := int64(1)
	for i := 0; i < axis; i++ {
		outer *= dims[i]
	}
	out := &Tensor{Type: first.Type, Dims: dims}
	for o := int64(0); o < outer; o++ {
		for _, t := range in {
			if t == nil {
				continue
			}
			inner := int64(1)
			for i := axis; i < len(t.Dims); i++ {
				inner *= t.Dims[i]
			}
			out.Ints = append(out.Ints, t.Ints[o*inner:(o+1)*inner]...)
		}
	}
	return out
}

func sliceInts(x *Tensor, starts, ends, axes, steps []int64) *Tensor {
	rank := len(x.Dims)
	begin := make([]int64, rank)
	step := make([]int64, rank)
	count := append([]int64{}, x.Dims...)
	for i := range step {
		step[i] = 1
	}
	for i := range starts {
		ax := int64(i)
		if axes != nil {
			ax = axes[i]
		}
		if ax < 0 {
			ax += int64(rank)
		}
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		b, _, c := SliceRange(starts[i], ends[i], st, x.Dims[ax])
		begin[ax], step[ax], count[ax] = b, st, c
	}
	xs, os := strides(x.Dims), strides(count)
	total := int64(1)
	for _, c := range count {
		total *= c
	}
	out := &Tensor{Type: x.Type, Dims: count, Ints: make([]int64, 0, total)}
	for flat := int64(0); flat < total; flat++ {
		var src int64
		for i := range count {
			c := flat / os[i] % count[i]
			src += (begin[i] + c*step[i]) * xs[i]
		}
		out.Ints = append(out.Ints, x.Ints[src])
	}
	return out
}

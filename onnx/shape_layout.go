package onnx

import "fmt"

// This file infers the shapes of the ops that move data without arithmetic: Concat, Split, Slice,
// Reshape, Squeeze, Unsqueeze, Gather, Pad and Resize.

func (st *inferState) concat(n *Node) ([]typedShape, error) {
	var out Shape
	var axis int
	for i, in := range n.Inputs {
		if in == "" {
			continue
		}
		s, err := st.shape(in)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = s.Clone()
			axis, err = normAxis(n.Int("axis", 0), len(s))
			if err != nil {
				return nil, err
			}
			continue
		}
		if len(s) != len(out) {
			return nil, fmt.Errorf("input %d has rank %d, want %d", i, len(s), len(out))
		}
		a, b := out[axis], s[axis]
		if a.Known() && b.Known() {
			out[axis] = D(a.Size + b.Size)
		} else {
			out[axis] = Unknown
		}
	}
	if out == nil {
		return nil, fmt.Errorf("no inputs")
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) split(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(n.Int("axis", 0), len(s))
	if err != nil {
		return nil, err
	}
	sizes, ok := st.ints(n, "split", 1)
	if !ok && n.Input(1) != "" {
		return nil, fmt.Errorf("split sizes are not a known constant")
	}
	k := len(n.Outputs)
	if sizes == nil {
		if !s[axis].Known() {
			out := make([]typedShape, k)
			for i := range out {
				c := s.Clone()
				c[axis] = Unknown
				out[i] = typedShape{st.dtype(n.Input(0)), c}
			}
			return out, nil
		}
		total := s[axis].Size
		chunk := (total + int64(k) - 1) / int64(k)
		for i := 0; i < k; i++ {
			c := chunk
			if rem := total - int64(i)*chunk; rem < chunk {
				c = rem
			}
			sizes = append(sizes, c)
		}
	}
	if len(sizes) != k {
		return nil, fmt.Errorf("%d split sizes for %d outputs", len(sizes), k)
	}
	var sum int64
	out := make([]typedShape, k)
	for i, c := range sizes {
		sum += c
		o := s.Clone()
		o[axis] = D(c)
		out[i] = typedShape{st.dtype(n.Input(0)), o}
	}
	if s[axis].Known() && sum != s[axis].Size {
		return nil, fmt.Errorf("split sizes %v do not add up to %d", sizes, s[axis].Size)
	}
	return out, nil
}

func (st *inferState) slice(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	starts, ok1 := st.ints(n, "starts", 1)
	ends, ok2 := st.ints(n, "ends", 2)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("starts and ends are not known constants")
	}
	axes, okA := st.ints(n, "axes", 3)
	if !okA {
		if n.Input(3) != "" {
			return nil, fmt.Errorf("axes are not a known constant")
		}
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	steps, okS := st.ints(n, "steps", 4)
	if !okS {
		if n.Input(4) != "" {
			return nil, fmt.Errorf("steps are not a known constant")
		}
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(ends) != len(starts) || len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v, steps %v differ in length", starts, ends, axes, steps)
	}
	out := s.Clone()
	for i, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		if steps[i] == 0 {
			return nil, fmt.Errorf("step 0")
		}
		if !s[ax].Known() {
			out[ax] = Unknown
			continue
		}
		_, _, c := SliceRange(starts[i], ends[i], steps[i], s[ax].Size)
		out[ax] = D(c)
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) reshape(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	var target []Dim
	if sh := n.Ints("shape"); sh != nil {
		target = dimsOf(sh)
	} else if v, ok := st.vals[n.Input(1)]; ok {
		target = v.shape()
	} else {
		return nil, fmt.Errorf("target shape is not a known constant")
	}
	allowZero := n.Int("allowzero", 0) != 0
	out := make(Shape, len(target))
	infer := -1
	for i, d := range target {
		switch {
		case d.Known() && d.Size == 0 && !allowZero:
			if i >= len(s) {
				return nil, fmt.Errorf("shape %v copies dim %d of a rank-%d input", target, i, len(s))
			}
			out[i] = s[i]
		case d.Known():
			out[i] = d
		case !d.Known() && d.Param != "":
			out[i] = d
		default:
			// a -1 (or an unknown value): at most one may be inferred
			if infer >= 0 {
				out[i] = Unknown
				continue
			}
			infer = i
		}
	}
	for i, d := range target {
		if d.Known() && d.Size == -1 {
			infer = i
		}
	}
	if infer >= 0 {
		if total := s.NumElements(); total >= 0 {
			rest := int64(1)
			for i, d := range out {
				if i != infer {
					rest *= d.Size
				}
			}
			switch {
			case !out.knownExcept(infer) || rest <= 0:
				out[infer] = Unknown
			case total%rest != 0:
				return nil, fmt.Errorf("cannot reshape %v to %v", s, target)
			default:
				out[infer] = D(total / rest)
			}
		} else {
			// Symbolic batch: the known part of the input divided by the known part of the target
			// gives the inferred dim whenever the symbols cancel (N×C×H×W to N×-1).
			out[infer] = cancelSymbols(s, out, infer)
		}
	}
	if tot, got := s.NumElements(), out.NumElements(); tot >= 0 && got >= 0 && tot != got {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", s, tot, out)
	}
	return one(st.dtype(n.Input(0)), out), nil
}

// knownExcept reports whether every dim but one is known.
func (s Shape) knownExcept(skip int) bool {
	for i, d := range s {
		if i != skip && !d.Known() {
			return false
		}
	}
	return true
}

// cancelSymbols infers a reshape's -1 when both shapes share the same symbolic dims.
func cancelSymbols(in, out Shape, infer int) Dim {
	syms := map[string]int{}
	known := int64(1)
	for _, d := range in {
		switch {
		case d.Known():
			known *= d.Size
		case d.Param != "":
			syms[d.Param]++
		default:
			return Unknown
		}
	}
	rest := int64(1)
	for i, d := range out {
		if i == infer {
			continue
		}
		switch {
		case d.Known():
			rest *= d.Size
		case d.Param != "":
			syms[d.Param]--
		default:
			return Unknown
		}
	}
	// One symbol left over once (N×1×1×C to -1×C) is the inferred dim itself when the known
	// parts match.
	left := ""
	for sym, c := range syms {
		switch {
		case c == 0:
		case c == 1 && left == "":
			left = sym
		default:
			return Unknown
		}
	}
	if rest == 0 || known%rest != 0 {
		return Unknown
	}
	if left != "" {
		if known == rest {
			return Dim{Size: -1, Param: left}
		}
		return Unknown
	}
	return D(known / rest)
}

func (st *inferState) squeeze(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	axes, ok := st.ints(n, "axes", 1)
	if !ok && n.Input(1) != "" {
		return nil, fmt.Errorf("axes are not a known constant")
	}
	drop := map[int]bool{}
	if axes == nil {
		for i, d := range s {
			if !d.Known() {
				return nil, fmt.Errorf("squeeze without axes on an unknown dim")
			}
			if d.Size == 1 {
				drop[i] = true
			}
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		drop[ax] = true
	}
	var out Shape = Shape{}
	for i, d := range s {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) unsqueeze(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	axes, ok := st.ints(n, "axes", 1)
	if !ok {
		return nil, fmt.Errorf("axes are not a known constant")
	}
	rank := len(s) + len(axes)
	ins := map[int]bool{}
	for _, a := range axes {
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		ins[ax] = true
	}
	out := make(Shape, 0, rank)
	j := 0
	for i := 0; i < rank; i++ {
		if ins[i] {
			out = append(out, D(1))
		} else {
			out = append(out, s[j])
			j++
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) gather(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	is, err := st.shape(n.Input(1))
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(n.Int("axis", 0), len(s))
	if err != nil {
		return nil, err
	}
	out := append(append(s[:axis:axis].Clone(), is...), s[axis+1:]...)
	if len(out) == 0 {
		out = Shape{}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) pad(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	pads, ok := st.ints(n, "pads", 1)
	if !ok {
		if p := n.Ints("paddings"); p != nil {
			pads = p
		} else {
			return nil, fmt.Errorf("pads are not a known constant")
		}
	}
	axes, okA := st.ints(n, "axes", 3)
	if !okA {
		for i := range s {
			axes = append(axes, int64(i))
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("%d pads for %d axes", len(pads), len(axes))
	}
	out := s.Clone()
	for i, a := range axes {
		ax, err := normAxis(a, len(s))
		if err != nil {
			return nil, err
		}
		if out[ax].Known() {
			out[ax] = D(out[ax].Size + pads[i] + pads[i+len(axes)])
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

func (st *inferState) resize(n *Node) ([]typedShape, error) {
	s, err := st.shape(n.Input(0))
	if err != nil {
		return nil, err
	}
	out := s.Clone()
	sizes, hasSizes := st.ints(n, "sizes", 3)
	if hasSizes && len(sizes) > 0 {
		if len(sizes) != len(s) {
			if axes := n.Ints("axes"); len(axes) == len(sizes) {
				for i, a := range axes {
					ax, err := normAxis(a, len(s))
					if err != nil {
						return nil, err
					}
					out[ax] = D(sizes[i])
				}
				return one(st.dtype(n.Input(0)), out), nil
			}
			return nil, fmt.Errorf("sizes %v do not match rank %d", sizes, len(s))
		}
		return one(st.dtype(n.Input(0)), ShapeOf(sizes...)), nil
	}
	scales := n.Floats("scales")
	if scales == nil {
		idx := 2
		if n.OpType == "Upsample" || st.opset == 10 {
			idx = 1
		}
		if v, ok := st.fvals[n.Input(idx)]; ok {
			scales = v
		}
	}
	if scales == nil {
		return nil, fmt.Errorf("scales and sizes are not known constants")
	}
	if len(scales) != len(s) {
		return nil, fmt.Errorf("scales %v do not match rank %d", scales, len(s))
	}
	for i, sc := range scales {
		if out[i].Known() {
			out[i] = D(int64(float64(out[i].Size) * float64(sc)))
		} else if sc != 1 {
			out[i] = Unknown
		}
	}
	return one(st.dtype(n.Input(0)), out), nil
}

// transpose permutes the dims (reversed when perm is absent).
func (st *inferState) transpose(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	s, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	perm := n.Ints("perm")
	if perm == nil {
		for i := len(s) - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != len(s) {
		return nil, fmt.Errorf("perm %v does not match rank %d", perm, len(s))
	}
	out := make(Shape, len(s))
	for i, p := range perm {
		if p < 0 || p >= int64(len(s)) {
			return nil, fmt.Errorf("perm %v out of range", perm)
		}
		out[i] = s[p]
	}
	return one(st.dtype(in0), out), nil
}

// flatten folds the dims before and from axis into two.
func (st *inferState) flatten(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	s, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	axis := n.Int("axis", 1)
	if axis < 0 {
		axis += int64(len(s))
	}
	if axis < 0 || axis > int64(len(s)) {
		return nil, fmt.Errorf("axis %d out of range for rank %d", axis, len(s))
	}
	return one(st.dtype(in0), Shape{prodDims(s[:axis]), prodDims(s[axis:])}), nil
}

// tile multiplies each dim by its repeat count.
func (st *inferState) tile(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	s, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	r, ok := st.ints(n, "repeats", 1)
	if !ok || len(r) != len(s) {
		return nil, fmt.Errorf("repeats are not a known constant of rank %d", len(s))
	}
	out := s.Clone()
	for i := range out {
		if out[i].Known() {
			out[i] = D(out[i].Size * r[i])
		} else if r[i] != 1 {
			out[i] = Unknown
		}
	}
	return one(st.dtype(in0), out), nil
}

// expand broadcasts the input to a shape given as a value.
func (st *inferState) expand(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	s, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	v, ok := st.vals[n.Input(1)]
	if !ok {
		return nil, fmt.Errorf("shape input is not a known constant")
	}
	out, err := broadcast(s, v.shape())
	if err != nil {
		return nil, err
	}
	return one(st.dtype(in0), out), nil
}

// depthToSpace moves blocksize² channels into a block of pixels, or back (SpaceToDepth).
func (st *inferState) depthToSpace(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	s, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	if len(s) != 4 {
		return nil, fmt.Errorf("input rank %d, want 4", len(s))
	}
	b := n.Int("blocksize", 1)
	out := s.Clone()
	mul := func(d Dim, f int64) Dim {
		if d.Known() {
			return D(d.Size * f)
		}
		return Unknown
	}
	div := func(d Dim, f int64) Dim {
		if d.Known() {
			return D(d.Size / f)
		}
		return Unknown
	}
	if n.OpType == "DepthToSpace" {
		out[1], out[2], out[3] = div(s[1], b*b), mul(s[2], b), mul(s[3], b)
	} else {
		out[1], out[2], out[3] = mul(s[1], b*b), div(s[2], b), div(s[3], b)
	}
	return one(st.dtype(in0), out), nil
}

// constantOfShape makes a tensor of the shape its input holds.
func (st *inferState) constantOfShape(n *Node) ([]typedShape, error) {
	in0 := n.Input(0)
	t := Float
	if a, ok := n.Attrs["value"]; ok && a.T != nil {
		t = a.T.Type
	}
	if v, ok := st.vals[in0]; ok {
		return one(t, v.shape()), nil
	}
	s, err := st.shape(in0)
	if err != nil {
		return nil, err
	}
	if len(s) != 1 || !s[0].Known() {
		return nil, fmt.Errorf("shape input has unknown length")
	}
	out := make(Shape, s[0].Size)
	for i := range out {
		out[i] = Unknown
	}
	return one(t, out), nil
}

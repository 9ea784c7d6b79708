package onnx

import "fmt"

// This file dispatches shape inference by op type; ops with more than a few lines of rules have
// their own function in shape_window.go, shape_layout.go or shape_math.go.

func (st *inferState) infer(n *Node) ([]typedShape, error) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, errUnknownOp
	}
	in0 := n.Input(0)
	switch n.OpType {
	case "Conv", "ConvInteger":
		return st.conv(n, false)
	case "ConvTranspose":
		return st.conv(n, true)
	case "MaxPool", "AveragePool", "LpPool":
		s, err := st.pool(n)
		if err != nil {
			return nil, err
		}
		out := one(st.dtype(in0), s)
		if n.OpType == "MaxPool" && len(n.Outputs) > 1 {
			out = append(out, typedShape{Int64, s})
		}
		return out, nil
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		if len(s) < 3 {
			return nil, fmt.Errorf("input rank %d < 3", len(s))
		}
		out := s.Clone()
		for i := 2; i < len(out); i++ {
			out[i] = D(1)
		}
		return one(st.dtype(in0), out), nil
	case "BatchNormalization":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		out := one(st.dtype(in0), s.Clone())
		if len(s) < 2 {
			return nil, fmt.Errorf("input rank %d < 2", len(s))
		}
		for i := 1; i < len(n.Outputs); i++ {
			out = append(out, typedShape{st.dtype(in0), Shape{s[1]}})
		}
		return out, nil
	case "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax",
		"LogSoftmax", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf",
		"Floor", "Ceil", "Round", "Reciprocal", "Identity", "InstanceNormalization", "LRN", "Mish", "Gelu",
		"Hardmax", "ThresholdedRelu", "Sin", "Cos", "Sign", "LpNormalization", "MeanVarianceNormalization",
		"Shrink", "Not", "IsNaN", "IsInf", "CumSum", "LayerNormalization", "GroupNormalization":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		t := st.dtype(in0)
		switch n.OpType {
		case "IsNaN", "IsInf":
			t = Bool
		}
		if n.OpType == "PRelu" {
			if ps, err := st.shape(n.Input(1)); err == nil {
				if b, err := broadcast(s, ps); err == nil {
					s = b
				}
			}
		}
		out := one(t, s.Clone())
		if n.OpType == "LayerNormalization" {
			for i := 1; i < len(n.Outputs); i++ {
				out = append(out, typedShape{Float, nil})
			}
		}
		return out, nil
	case "Dropout":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		return []typedShape{{st.dtype(in0), s.Clone()}, {Bool, s.Clone()}}, nil
	case "Cast", "CastLike":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		t := DataType(n.Int("to", int64(Float)))
		if n.OpType == "CastLike" {
			t = st.dtype(n.Input(1))
		}
		return one(t, s.Clone()), nil
	case "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean", "Mod", "BitShift",
		"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "PRelu2":
		var shapes []Shape
		for _, in := range n.Inputs {
			if in == "" {
				continue
			}
			s, err := st.shape(in)
			if err != nil {
				return nil, err
			}
			shapes = append(shapes, s)
		}
		s, err := broadcast(shapes...)
		if err != nil {
			return nil, err
		}
		t := st.dtype(in0)
		switch n.OpType {
		case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
			t = Bool
		case "Where":
			t = st.dtype(n.Input(1))
		}
		return one(t, s), nil
	case "Concat":
		return st.concat(n)
	case "Split":
		return st.split(n)
	case "Slice":
		return st.slice(n)
	case "Flatten":
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
	case "Reshape":
		return st.reshape(n)
	case "Transpose":
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
	case "Squeeze":
		return st.squeeze(n)
	case "Unsqueeze":
		return st.unsqueeze(n)
	case "Gemm":
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
	case "MatMul", "MatMulInteger":
		return st.matmul(n)
	case "Pad":
		return st.pad(n)
	case "Resize", "Upsample":
		return st.resize(n)
	case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum", "ArgMax", "ArgMin":
		return st.reduce(n)
	case "Shape":
		s, err := st.shape(in0)
		if err != nil {
			return nil, err
		}
		start, end := shapeRange(n, int64(len(s)))
		return one(Int64, ShapeOf(end-start)), nil
	case "Size":
		if _, err := st.shape(in0); err != nil {
			return nil, err
		}
		return one(Int64, Shape{}), nil
	case "Gather":
		return st.gather(n)
	case "ConstantOfShape":
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
	case "Expand":
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
	case "Tile":
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
	case "Range":
		return st.rangeOp(n)
	case "Constant":
		if a, ok := n.Attrs["value"]; ok && a.T != nil {
			return one(a.T.Type, a.T.Shape()), nil
		}
		if a, ok := n.Attrs["sparse_value"]; ok && a.Raw != nil && a.Raw.SparseTensor != nil {
			return one(DataType(a.Raw.SparseTensor.GetValues().GetDataType()), ShapeOf(a.Raw.SparseTensor.Dims...)), nil
		}
		return nil, fmt.Errorf("Constant without a tensor value")
	case "DepthToSpace", "SpaceToDepth":
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
	return nil, errUnknownOp
}

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
		return st.flatten(n)
	case "Reshape":
		return st.reshape(n)
	case "Transpose":
		return st.transpose(n)
	case "Squeeze":
		return st.squeeze(n)
	case "Unsqueeze":
		return st.unsqueeze(n)
	case "Gemm":
		return st.gemm(n)
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
		return st.constantOfShape(n)
	case "Expand":
		return st.expand(n)
	case "Tile":
		return st.tile(n)
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
		return st.depthToSpace(n)
	}
	return nil, errUnknownOp
}

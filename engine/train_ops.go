package engine

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// gradFor returns the backward of a node and which of its inputs it passes gradient to. stop
// means gradients end at the node (its outputs are integers, or piecewise constant); a nil
// gradOp without stop means the op has no backward.
func gradFor(n *onnx.Node, fwd op, opset int64) (g gradOp, diff []bool, stop bool, err error) {
	first := []bool{true}
	all := func(k int) []bool {
		d := make([]bool, k)
		for i := range d {
			d[i] = true
		}
		return d
	}
	switch n.OpType {
	case "Shape", "Size", "ArgMax", "ArgMin", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
		"And", "Or", "Xor", "Not", "IsNaN", "IsInf", "ConstantOfShape", "Constant", "Range", "Floor", "Ceil",
		"Round", "Sign", "OneHot", "NonZero", "BitShift", "Mod", "Hardmax":
		return nil, nil, true, nil
	case "Cast", "CastLike":
		to := onnx.DataType(n.Int("to", int64(onnx.Float)))
		if n.OpType == "CastLike" || to.IsFloat() {
			return identityGrad{}, first, false, nil
		}
		return nil, nil, true, nil
	case "Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze":
		if _, ok := fwd.(viewOp); ok {
			return viewGrad{}, first, false, nil
		}
		return identityGrad{}, first, false, nil
	case "Conv":
		return &convGrad{node: n}, all(3), false, nil
	case "ConvTranspose":
		return &convTGrad{node: n, fwd: fwd}, all(3), false, nil
	case "Gemm":
		return newGemmGrad(n), all(3), false, nil
	case "MatMul":
		return &matMulGrad{}, all(2), false, nil
	case "BatchNormalization":
		bn, ok := fwd.(*trainBN)
		if !ok {
			return nil, nil, false, fmt.Errorf("internal: BatchNormalization forward is %T", fwd)
		}
		return bn, all(5), false, nil
	case "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Elu",
		"Selu", "Celu", "Softsign", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Gelu", "Mish", "Sin", "Cos":
		u, err := newUnaryGrad(n)
		return u, first, false, err
	case "PRelu":
		return &preluGrad{}, all(2), false, nil
	case "Add", "Sub", "Mul", "Div", "Pow":
		return newBinaryGrad(n.OpType), all(2), false, nil
	case "Sum", "Mean":
		return &sumGrad{mean: n.OpType == "Mean"}, all(len(n.Inputs)), false, nil
	case "Max", "Min":
		return &extremumGrad{}, all(len(n.Inputs)), false, nil
	case "Concat":
		return &concatGrad{axis: int(n.Int("axis", 1))}, all(len(n.Inputs)), false, nil
	case "Split":
		return &splitGrad{axis: int(n.Int("axis", 0))}, first, false, nil
	case "Slice", "Transpose", "Gather", "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "Pad":
		return &gatherGrad{fwd: fwd}, first, false, nil
	case "Resize", "Upsample":
		mode := n.String("mode", "nearest")
		if mode != "nearest" {
			return nil, nil, false, fmt.Errorf("Resize mode %q has no backward (only nearest)", mode)
		}
		return &gatherGrad{fwd: fwd}, first, false, nil
	case "MaxPool", "AveragePool":
		return newPoolGrad(n)
	case "GlobalAveragePool", "GlobalMaxPool":
		return &globalPoolGrad{max: n.OpType == "GlobalMaxPool"}, first, false, nil
	case "ReduceMean", "ReduceSum":
		return newReduceGrad(n), first, false, nil
	case "Softmax", "LogSoftmax":
		return newSoftmaxGrad(n, opset), first, false, nil
	}
	return nil, nil, false, nil
}

// viewGrad is the backward of a view (Reshape, Flatten, ...): the output's gradient slot is the
// input's, so there is nothing to do.
type viewGrad struct{}

func (viewGrad) backward(*ctx, *gradArgs) error { return nil }

// identityGrad passes the gradient through (Dropout with a mask output, float Casts).
type identityGrad struct{}

func (identityGrad) backward(_ *ctx, a *gradArgs) error {
	if a.din[0] == nil || a.dout[0] == nil {
		return nil
	}
	addOrSet(a.din[0].Data, a.dout[0].Data, a.acc[0])
	return nil
}

// addOrSet adds src to dst, or copies it when acc is false.
func addOrSet(dst, src []float32, acc bool) {
	if !acc {
		copy(dst, src)
		return
	}
	vadd(dst, src)
}

// zeroUnlessAcc clears dst when it does not hold a gradient yet (before a scatter-add).
func zeroUnlessAcc(dst *Tensor, acc bool) {
	if dst != nil && !acc {
		clear(dst.Data)
	}
}

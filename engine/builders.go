package engine

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// builder hands a node and the graph's constants to an op constructor.
type builder struct {
	g      *onnx.Graph
	n      *onnx.Node
	opset  int64
	consts map[string]*Tensor
}

// konst returns input i when it is a constant, else nil.
func (b *builder) konst(i int) *Tensor {
	name := b.n.Input(i)
	if name == "" {
		return nil
	}
	return b.consts[name]
}

func (b *builder) ints(name string) []int { return ints(b.n.Ints(name)) }

// builderFor returns the constructor of an ONNX op.
func builderFor(opType string) (func(*builder) (op, error), bool) {
	unary := func(k unaryKind) func(*builder) (op, error) {
		return func(*builder) (op, error) { return newUnary(k), nil }
	}
	binary := func(k binKind) func(*builder) (op, error) {
		return func(b *builder) (op, error) {
			if b.opset < 7 && b.n.Int("broadcast", 0) != 0 && b.n.Has("axis") {
				return nil, fmt.Errorf("legacy broadcast with an axis is not supported")
			}
			return newBinary(k), nil
		}
	}
	variadic := func(k binKind, mean bool) func(*builder) (op, error) {
		return func(*builder) (op, error) { return &variadicOp{kind: k, mean: mean, bin: newBinary(k)}, nil }
	}
	switch opType {
	case "Conv":
		return func(b *builder) (op, error) { return buildConv(b) }, true
	case "ConvTranspose":
		return buildConvTranspose, true
	case "BatchNormalization":
		return buildBatchNorm, true
	case "InstanceNormalization":
		return func(b *builder) (op, error) {
			return &instanceNormOp{eps: b.n.Float("epsilon", 1e-5)}, nil
		}, true
	case "LRN":
		return func(b *builder) (op, error) {
			return &lrnOp{size: int(b.n.Int("size", 0)), alpha: b.n.Float("alpha", 1e-4),
				beta: b.n.Float("beta", 0.75), bias: b.n.Float("bias", 1)}, nil
		}, true
	case "Relu":
		return unary(unRelu), true
	case "LeakyRelu":
		return func(b *builder) (op, error) {
			o := newUnary(unLeakyRelu)
			o.alpha = b.n.Float("alpha", 0.01)
			return o, nil
		}, true
	case "PRelu":
		return func(*builder) (op, error) { return &preluOp{}, nil }, true
	case "Clip":
		return func(b *builder) (op, error) {
			o := newUnary(unClip)
			o.lo, o.hi = b.n.Float("min", negInf), b.n.Float("max", posInf)
			o.dynClip = len(b.n.Inputs) > 1
			return o, nil
		}, true
	case "Sigmoid":
		return unary(unSigmoid), true
	case "HardSigmoid":
		return func(b *builder) (op, error) {
			o := newUnary(unHardSigmoid)
			o.alpha, o.beta = b.n.Float("alpha", 0.2), b.n.Float("beta", 0.5)
			return o, nil
		}, true
	case "HardSwish":
		return unary(unHardSwish), true
	case "Tanh":
		return unary(unTanh), true
	case "Elu":
		return func(b *builder) (op, error) {
			o := newUnary(unElu)
			o.alpha = b.n.Float("alpha", 1)
			return o, nil
		}, true
	case "Selu":
		return func(b *builder) (op, error) {
			o := newUnary(unSelu)
			o.alpha = b.n.Float("alpha", 1.67326319217681884765625)
			o.gamma = b.n.Float("gamma", 1.05070102214813232421875)
			return o, nil
		}, true
	case "Celu":
		return func(b *builder) (op, error) {
			o := newUnary(unCelu)
			o.alpha = b.n.Float("alpha", 1)
			return o, nil
		}, true
	case "ThresholdedRelu":
		return func(b *builder) (op, error) {
			o := newUnary(unThresholdedRelu)
			o.alpha = b.n.Float("alpha", 1)
			return o, nil
		}, true
	case "Shrink":
		return func(b *builder) (op, error) {
			o := newUnary(unShrink)
			o.alpha, o.beta = b.n.Float("bias", 0), b.n.Float("lambd", 0.5)
			return o, nil
		}, true
	case "Gelu":
		return unary(unGelu), true
	case "Mish":
		return unary(unMish), true
	case "Softplus":
		return unary(unSoftplus), true
	case "Softsign":
		return unary(unSoftsign), true
	case "Exp":
		return unary(unExp), true
	case "Log":
		return unary(unLog), true
	case "Sqrt":
		return unary(unSqrt), true
	case "Abs":
		return unary(unAbs), true
	case "Neg":
		return unary(unNeg), true
	case "Reciprocal":
		return unary(unReciprocal), true
	case "Floor":
		return unary(unFloor), true
	case "Ceil":
		return unary(unCeil), true
	case "Round":
		return unary(unRound), true
	case "Erf":
		return unary(unErf), true
	case "Sign":
		return unary(unSign), true
	case "Sin":
		return unary(unSin), true
	case "Cos":
		return unary(unCos), true
	case "Tan":
		return unary(unTan), true
	case "Asin":
		return unary(unAsin), true
	case "Acos":
		return unary(unAcos), true
	case "Atan":
		return unary(unAtan), true
	case "Sinh":
		return unary(unSinh), true
	case "Cosh":
		return unary(unCosh), true
	case "Asinh":
		return unary(unAsinh), true
	case "Acosh":
		return unary(unAcosh), true
	case "Atanh":
		return unary(unAtanh), true
	case "Not":
		return unary(unNot), true
	case "IsNaN":
		return unary(unIsNaN), true
	case "IsInf":
		return func(b *builder) (op, error) {
			o := newUnary(unIsInf)
			o.detectPos, o.detectNeg = b.n.Int("detect_positive", 1) != 0, b.n.Int("detect_negative", 1) != 0
			return o, nil
		}, true
	case "Add":
		return binary(binAdd), true
	case "Sub":
		return binary(binSub), true
	case "Mul":
		return binary(binMul), true
	case "Div":
		return binary(binDiv), true
	case "Pow":
		return binary(binPow), true
	case "Mod":
		return func(b *builder) (op, error) {
			if b.n.Int("fmod", 0) != 0 {
				return newBinary(binFmod), nil
			}
			return newBinary(binMod), nil
		}, true
	case "Equal":
		return binary(binEqual), true
	case "Less":
		return binary(binLess), true
	case "Greater":
		return binary(binGreater), true
	case "LessOrEqual":
		return binary(binLessEq), true
	case "GreaterOrEqual":
		return binary(binGreaterEq), true
	case "And":
		return binary(binAnd), true
	case "Or":
		return binary(binOr), true
	case "Xor":
		return binary(binXor), true
	case "BitShift":
		return func(b *builder) (op, error) {
			if b.n.String("direction", "") == "LEFT" {
				return newBinary(binBitShiftL), nil
			}
			return newBinary(binBitShiftR), nil
		}, true
	case "Max":
		return variadic(binMax, false), true
	case "Min":
		return variadic(binMin, false), true
	case "Sum":
		return variadic(binAdd, false), true
	case "Mean":
		return variadic(binAdd, true), true
	case "Where":
		return func(*builder) (op, error) { return &whereOp{}, nil }, true
	case "Softmax", "LogSoftmax", "Hardmax":
		return buildSoftmax, true
	case "MaxPool", "AveragePool", "LpPool":
		return buildPool, true
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		return func(b *builder) (op, error) {
			return &globalPoolOp{max: b.n.OpType == "GlobalMaxPool", lp: b.n.OpType == "GlobalLpPool", p: int(b.n.Int("p", 2))}, nil
		}, true
	case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
		return buildReduce, true
	case "ArgMax", "ArgMin":
		return buildArg, true
	case "Gemm":
		return buildGemm, true
	case "MatMul":
		return func(*builder) (op, error) { return &matMulOp{}, nil }, true
	case "Flatten":
		return func(b *builder) (op, error) { return &flattenOp{axis: int(b.n.Int("axis", 1))}, nil }, true
	case "Reshape":
		return buildReshape, true
	case "Squeeze", "Unsqueeze":
		return buildSqueeze, true
	case "Identity":
		return func(*builder) (op, error) { return &identityOp{}, nil }, true
	case "Dropout":
		return buildDropout, true
	case "Transpose":
		return func(b *builder) (op, error) { return &transposeOp{perm: b.ints("perm")}, nil }, true
	case "Concat":
		return func(b *builder) (op, error) {
			if !b.n.Has("axis") && b.opset >= 4 {
				return nil, fmt.Errorf("Concat needs an axis")
			}
			return &concatOp{axis: int(b.n.Int("axis", 1))}, nil
		}, true
	case "Split":
		return buildSplit, true
	case "Slice":
		return buildSlice, true
	case "Gather":
		return func(b *builder) (op, error) { return &gatherOp{axis: int(b.n.Int("axis", 0))}, nil }, true
	case "Shape":
		return func(b *builder) (op, error) {
			o := &shapeOp{start: int(b.n.Int("start", 0))}
			if b.n.Has("end") {
				o.end, o.hasEnd = int(b.n.Int("end", 0)), true
			}
			return o, nil
		}, true
	case "Size":
		return func(*builder) (op, error) { return &sizeOp{}, nil }, true
	case "Cast":
		return buildCast, true
	case "CastLike":
		return func(b *builder) (op, error) {
			o := &castOp{like: true}
			if v := b.g.Values[b.n.Input(1)]; v != nil {
				o.toF16, o.toBF16 = v.Type == onnx.Float16, v.Type == onnx.BFloat16
			}
			return o, nil
		}, true
	case "ConstantOfShape":
		return buildConstantOfShape, true
	case "Constant":
		return buildConstant, true
	case "Expand":
		return func(*builder) (op, error) { return &expandOp{}, nil }, true
	case "Tile":
		return func(*builder) (op, error) { return &tileOp{}, nil }, true
	case "Range":
		return func(*builder) (op, error) { return &rangeOp{}, nil }, true
	case "Pad":
		return buildPad, true
	case "Resize", "Upsample":
		return buildResize, true
	case "LayerNormalization":
		return buildLayerNorm, true
	case "MeanVarianceNormalization":
		return func(b *builder) (op, error) {
			axes := b.ints("axes")
			if axes == nil {
				axes = []int{0, 2, 3}
			}
			return &mvnOp{axes: axes}, nil
		}, true
	case "GatherElements":
		return func(b *builder) (op, error) { return &gatherElementsOp{axis: int(b.n.Int("axis", 0))}, nil }, true
	case "CumSum":
		return func(b *builder) (op, error) {
			return &cumSumOp{exclusive: b.n.Int("exclusive", 0) != 0, reverse: b.n.Int("reverse", 0) != 0}, nil
		}, true
	case "Trilu":
		return func(b *builder) (op, error) { return &triluOp{upper: b.n.Int("upper", 1) != 0}, nil }, true
	case "TopK":
		return func(b *builder) (op, error) {
			if b.opset < 10 {
				return nil, fmt.Errorf("TopK before opset 10 is not supported")
			}
			return &topKOp{axis: int(b.n.Int("axis", -1)), largest: b.n.Int("largest", 1) != 0, sorted: b.n.Int("sorted", 1) != 0}, nil
		}, true
	case "OneHot":
		return func(b *builder) (op, error) { return &oneHotOp{axis: int(b.n.Int("axis", -1))}, nil }, true
	case "DepthToSpace":
		return func(b *builder) (op, error) {
			return &depthSpaceOp{toSpace: true, block: int(b.n.Int("blocksize", 0)), crd: b.n.String("mode", "DCR") == "CRD"}, nil
		}, true
	case "SpaceToDepth":
		return func(b *builder) (op, error) {
			return &depthSpaceOp{block: int(b.n.Int("blocksize", 0))}, nil
		}, true
	}
	return nil, false
}

func buildConv(b *builder) (op, error) {
	o, err := newConvOp(b)
	if err != nil {
		return nil, err
	}
	if w := b.konst(1); w != nil && !w.IsInt() {
		var bias []float32
		if bt := b.konst(2); bt != nil && !bt.IsInt() {
			bias = bt.Data
		} else if b.n.Input(2) != "" {
			return o, nil // run-time bias: pack at run time
		}
		if err := o.setWeights(w.Data, w.Shape, bias); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func newConvOp(b *builder) (*convOp, error) {
	n := b.n
	o := &convOp{group: int(n.Int("group", 1)), lo: negInf, hi: posInf, resIn: -1}
	o.copyT.fn = o.copyPlanes
	o.win = nodeWindow(n)
	if o.group < 1 {
		return nil, fmt.Errorf("group %d", o.group)
	}
	if w := b.konst(1); w != nil && len(w.Shape) > 4 {
		return nil, fmt.Errorf("%d-D convolution is not supported", len(w.Shape)-2)
	}
	return o, nil
}

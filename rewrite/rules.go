package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// rule is the coupling rule of one op family. It reads the layouts of the node's inputs, joins or
// pins their channel elements, records the actions Slice takes on the node (each with the index
// map of the tensor it cuts) and sets the layouts of the node's outputs. A rule returns an error
// only for a malformed model; an op it cannot see through is made opaque, with the reason.
type rule func(a *Analysis, n *onnx.Node) error

// rules maps each op type of the default domain that chanopt sees through to its rule. Every other
// op is opaque: its channels are pinned.
var rules = ruleTable()

func ruleTable() map[string]rule {
	t := map[string]rule{
		"Conv":                  (*Analysis).conv,
		"ConvTranspose":         (*Analysis).convTranspose,
		"Gemm":                  (*Analysis).gemm,
		"MatMul":                (*Analysis).gemm,
		"BatchNormalization":    (*Analysis).norm,
		"InstanceNormalization": (*Analysis).norm,
		"PRelu":                 (*Analysis).elementwise,
		"Concat":                (*Analysis).concat,
		"Split":                 (*Analysis).split,
		"Slice":                 (*Analysis).sliceOp,
		"Flatten":               (*Analysis).reshape,
		"Reshape":               (*Analysis).reshape,
		"Transpose":             (*Analysis).transpose,
		"Squeeze":               (*Analysis).squeeze,
		"Unsqueeze":             (*Analysis).unsqueeze,
		"Pad":                   (*Analysis).pad,
		"Resize":                (*Analysis).resize,
		"Upsample":              (*Analysis).resize,
		"Shape":                 (*Analysis).shapeOf,
		"Size":                  (*Analysis).shapeOf,
	}
	for _, op := range channelwise {
		t[op] = (*Analysis).passThrough
	}
	for _, op := range []string{"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"} {
		t[op] = (*Analysis).pool
	}
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow", "Where", "Equal", "Less", "Greater"} {
		t[op] = (*Analysis).elementwise
	}
	for _, op := range []string{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"} {
		t[op] = (*Analysis).reduce
	}
	for _, op := range []string{"Softmax", "LogSoftmax", "Hardmax"} {
		t[op] = (*Analysis).softmax
	}
	return t
}

// visit applies the node's rule, or makes it opaque when chanopt has none.
func (a *Analysis) visit(n *onnx.Node) error {
	if n.Domain != "" {
		a.opaque(n, fmt.Sprintf("op %s.%s at node %s is not known to chanopt", n.Domain, n.OpType, n.Label()))
		return nil
	}
	if r, ok := rules[n.OpType]; ok {
		return r(a, n)
	}
	a.opaque(n, fmt.Sprintf("op %s at node %s is not known to chanopt's dependency rules", n.OpType, n.Label()))
	return nil
}

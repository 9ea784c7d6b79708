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

// Helpers the rules share.

func (a *Analysis) shape(name string) onnx.Shape {
	if v, ok := a.Model.Graph.Values[name]; ok {
		return v.Shape
	}
	return nil
}

func (a *Analysis) isConst(name string) bool {
	_, ok := a.Model.Graph.Inits[name]
	return ok
}

// get returns the layout of a value, making a pinned one for a channelled value whose channels
// chanopt could not trace (so its consumers still appear, pinned, in a group).
func (a *Analysis) get(name string, why string) *layout {
	if l, ok := a.layouts[name]; ok {
		return l
	}
	if name == "" || a.isConst(name) {
		return nil
	}
	s := a.shape(name)
	if len(s) < 2 || !s[1].Known() {
		return nil
	}
	if a.Model.Graph.IsInput(name) {
		why = fmt.Sprintf("graph input %s is never resized", name)
	}
	refs := a.newSpace(int(s[1].Size), why)
	a.pin(refs, why)
	l := &layout{axis: 1, refs: refs}
	a.layouts[name] = l
	return l
}

// opaque pins the channels of every input and gives each output its own pinned channels.
func (a *Analysis) opaque(n *onnx.Node, why string) {
	for _, in := range n.Inputs {
		if l := a.layouts[in]; l != nil {
			a.pin(l.refs, why)
		}
	}
	for _, o := range n.Outputs {
		a.get(o, why)
	}
}

func (a *Analysis) setOut(n *onnx.Node, i int, l *layout) {
	if i < len(n.Outputs) && n.Outputs[i] != "" && l != nil {
		a.layouts[n.Outputs[i]] = l
	}
}

func label(n *onnx.Node) string { return fmt.Sprintf("%s %s", n.OpType, n.Label()) }

func (a *Analysis) add(act action) { a.actions = append(a.actions, act) }

func normAxis(v int64, rank int) int64 {
	if v < 0 {
		v += int64(rank)
	}
	return v
}

// checkLen returns an error when constant input i of n does not have want entries along axis: a
// per-channel parameter of the wrong length is a malformed model (shape inference does not check
// every one), and slicing or masking it would run off its end.
func (a *Analysis) checkLen(n *onnx.Node, i, axis, want int) error {
	t, ok := a.Model.Graph.Inits[n.Input(i)]
	if !ok {
		return nil
	}
	if axis >= len(t.Dims) || t.Dims[axis] != int64(want) {
		return fmt.Errorf("input %d (%s) has shape %v, want %d entries along axis %d", i, t.Name, t.Dims, want, axis)
	}
	return nil
}

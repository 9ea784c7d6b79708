package rewrite

import (
	"fmt"
	"sort"

	"github.com/chanopt/chanopt/onnx"
)

// GroupID identifies a group within one analysis.
type GroupID int

// Group is a set of channels that must keep the same indices: channel j of the group is one channel
// of every producer output, consumer input and per-channel parameter listed in Members.
type Group struct {
	ID       GroupID  `json:"id"`
	Channels int      `json:"channels"`
	Prunable bool     `json:"prunable"`
	Reason   string   `json:"reason,omitempty"` // why the group is pinned
	Members  []string `json:"members"`
	// Blocks > 1 says a grouped convolution splits the group's channels into that many blocks, which
	// must all keep the same number of channels; BlockOf gives each channel's block.
	Blocks  int   `json:"blocks,omitempty"`
	BlockOf []int `json:"-"`
	// Producers and Consumers name the nodes whose weights make and read the group's channels.
	Producers []string `json:"-"`
	Consumers []string `json:"-"`
	// comps are the union-find roots of the group's channels, in channel order.
	comps []int
}

// Analysis is the result of dependency extraction: the groups and everything Slice needs.
type Analysis struct {
	Model  *onnx.Model
	Groups []*Group
	// elements: every channel of every channel space, as a union-find forest.
	parent  []int
	pinned  map[int]string // root → reason
	spaces  []space
	layouts map[string]*layout
	actions []action
	// compGroup maps a union-find root to its group and its index within the group.
	compGroup map[int]*Group
	compIndex map[int]int
	// blockTags records the block a grouped conv puts each element in, resolved after all unions.
	blockTags []blockNote
}

type blockNote struct {
	elem int
	tag  blockTag
}

type blockTag struct {
	blocks, block int
	by            string
}

// space is a set of channels made by one producer (or one graph input, or an op chanopt does not
// look through).
type space struct {
	base, size int
	origin     string
}

// layout says which channel element sits at each index of a value's channel axis. A flattened
// feature map keeps its channels and the column formula of the flattening.
type layout struct {
	axis int
	refs []int // element ids along the channel axis
	flat *flatMap
}

// flatMap describes the columns of a flattened feature map: channel c owns the columns
// c·A + k·B for k < K (NCHW flatten: A = H·W, B = 1; NHWC flatten: A = 1, B = C).
type flatMap struct{ A, B, K int }

// actionKind says how an action rewrites its node.
type actionKind int

const (
	sliceAxis      actionKind = iota // slice a constant along an axis by the refs
	sliceGroupedIn                   // slice a grouped conv weight's axis 1 per output block
	splitSizes                       // rewrite a Split's sizes
	sliceBounds                      // rewrite a Slice's starts/ends on the channel axis
	reshapeDim                       // rewrite one dim of a Reshape's constant target
)

// action is one rewrite Slice performs for one node.
type action struct {
	kind   actionKind
	node   *onnx.Node
	role   string // "out", "in", "param" (for the member list)
	tensor string // the constant sliced
	input  int    // which input of the node the constant is
	axis   int
	refs   []int
	flat   *flatMap
	groups int     // sliceGroupedIn: the conv's group count
	outs   [][]int // splitSizes: each output's refs
	dim    int     // reshapeDim: the target dim; sliceBounds: the axis
	mult   int     // reshapeDim: elements per channel
	// sliceBounds: the original start and end on the channel axis
	start, end int64
}

func (a *Analysis) find(x int) int {
	for a.parent[x] != x {
		a.parent[x] = a.parent[a.parent[x]]
		x = a.parent[x]
	}
	return x
}

func (a *Analysis) union(x, y int) {
	rx, ry := a.find(x), a.find(y)
	if rx == ry {
		return
	}
	if ry < rx {
		rx, ry = ry, rx
	}
	a.parent[ry] = rx
	if r, ok := a.pinned[ry]; ok {
		if _, has := a.pinned[rx]; !has {
			a.pinned[rx] = r
		}
		delete(a.pinned, ry)
	}
}

func (a *Analysis) pin(refs []int, reason string) {
	for _, e := range refs {
		r := a.find(e)
		if _, ok := a.pinned[r]; !ok {
			a.pinned[r] = reason
		}
	}
}

func (a *Analysis) newSpace(size int, origin string) []int {
	base := len(a.parent)
	refs := make([]int, size)
	for i := range refs {
		a.parent = append(a.parent, base+i)
		refs[i] = base + i
	}
	a.spaces = append(a.spaces, space{base: base, size: size, origin: origin})
	return refs
}

// Groups analyses a model: it infers shapes (keeping symbolic dims) and finds every channel group.
func Groups(m *onnx.Model) (*Analysis, error) {
	res, err := onnx.InferShapes(m, onnx.InferOptions{Lenient: true})
	if err != nil {
		return nil, err
	}
	a := &Analysis{Model: m, pinned: map[int]string{}, layouts: map[string]*layout{}}
	g := m.Graph
	// Graph inputs get their (pinned) channels when a consumer reads them: only the consumer knows
	// which axis holds them (an NHWC input goes through a Transpose first).
	for _, n := range g.Nodes {
		if err := a.visit(n, res.IntValues); err != nil {
			return nil, fmt.Errorf("node %s (%s): %w", n.Label(), n.OpType, err)
		}
	}
	for _, o := range g.Outputs {
		if l := a.layouts[o]; l != nil {
			a.pin(l.refs, fmt.Sprintf("graph output %s is never resized", o))
		}
	}
	a.buildGroups()
	return a, nil
}

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

// passThrough ops keep every channel where it is.
var passThrough = map[string]bool{
	"Relu": true, "LeakyRelu": true, "Clip": true, "Sigmoid": true, "HardSigmoid": true, "HardSwish": true,
	"Tanh": true, "Softplus": true, "Softsign": true, "Elu": true, "Selu": true, "Celu": true, "Mish": true,
	"Gelu": true, "Dropout": true, "Identity": true, "Cast": true, "MaxPool": true, "AveragePool": true,
	"LpPool": true, "GlobalAveragePool": true, "GlobalMaxPool": true, "GlobalLpPool": true, "Abs": true,
	"Neg": true, "Exp": true, "Log": true, "Sqrt": true, "Reciprocal": true, "Erf": true, "Floor": true,
	"Ceil": true, "Round": true, "ThresholdedRelu": true, "Sin": true, "Cos": true, "Sign": true,
}

var elementwise = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Max": true, "Min": true, "Sum": true, "Mean": true,
	"Pow": true, "Where": true, "Equal": true, "Less": true, "Greater": true,
}

func (a *Analysis) visit(n *onnx.Node, vals map[string][]onnx.Dim) error {
	if n.Domain != "" {
		a.opaque(n, fmt.Sprintf("op %s.%s at node %s is not known to chanopt", n.Domain, n.OpType, n.Label()))
		return nil
	}
	x := n.Input(0)
	switch {
	case n.OpType == "Conv":
		return a.conv(n)
	case n.OpType == "ConvTranspose":
		return a.convTranspose(n)
	case n.OpType == "Gemm" || n.OpType == "MatMul":
		return a.gemm(n)
	case n.OpType == "BatchNormalization" || n.OpType == "InstanceNormalization":
		l := a.get(x, fmt.Sprintf("input of %s", label(n)))
		if l == nil || l.axis != 1 || l.flat != nil {
			a.opaque(n, fmt.Sprintf("%s normalises an axis chanopt cannot map", label(n)))
			return nil
		}
		for i := 1; i < len(n.Inputs); i++ {
			if a.isConst(n.Inputs[i]) {
				a.add(action{kind: sliceAxis, node: n, role: "param", tensor: n.Inputs[i], input: i, axis: 0, refs: l.refs})
			} else {
				a.pin(l.refs, fmt.Sprintf("%s has a computed parameter", label(n)))
			}
		}
		a.setOut(n, 0, l)
		for i := 1; i < len(n.Outputs); i++ {
			a.setOut(n, i, &layout{axis: 0, refs: l.refs})
		}
		return nil
	case n.OpType == "PRelu":
		return a.elementwise(n)
	case passThrough[n.OpType]:
		l := a.layouts[x]
		if l != nil && (n.OpType == "MaxPool" || n.OpType == "AveragePool" || n.OpType == "GlobalAveragePool" ||
			n.OpType == "GlobalMaxPool") && (l.axis != 1 || l.flat != nil) {
			a.opaque(n, fmt.Sprintf("%s pools over the channel axis", label(n)))
			return nil
		}
		a.setOut(n, 0, l)
		if n.OpType == "Dropout" && len(n.Outputs) > 1 {
			a.setOut(n, 1, l)
		}
		return nil
	case elementwise[n.OpType]:
		return a.elementwise(n)
	case n.OpType == "Concat":
		return a.concat(n)
	case n.OpType == "Split":
		return a.split(n)
	case n.OpType == "Slice":
		return a.slice(n)
	case n.OpType == "Flatten" || n.OpType == "Reshape":
		return a.reshape(n, vals)
	case n.OpType == "Transpose":
		l := a.layouts[x]
		if l == nil {
			return nil
		}
		if l.flat != nil {
			a.opaque(n, fmt.Sprintf("%s permutes a flattened feature map", label(n)))
			return nil
		}
		perm := n.Ints("perm")
		rank := len(a.shape(x))
		if perm == nil {
			for i := rank - 1; i >= 0; i-- {
				perm = append(perm, int64(i))
			}
		}
		for j, p := range perm {
			if int(p) == l.axis {
				a.setOut(n, 0, &layout{axis: j, refs: l.refs})
				return nil
			}
		}
		a.opaque(n, fmt.Sprintf("%s drops the channel axis", label(n)))
		return nil
	case n.OpType == "Squeeze" || n.OpType == "Unsqueeze":
		l := a.layouts[x]
		if l == nil {
			return nil
		}
		in, out := a.shape(x), a.shape(n.Outputs[0])
		axes := n.Ints("axes")
		if in == nil || out == nil || (axes == nil && n.Input(1) != "") || l.flat != nil && n.OpType == "Unsqueeze" {
			a.opaque(n, fmt.Sprintf("%s has axes chanopt cannot resolve", label(n)))
			return nil
		}
		ax := l.axis
		if n.OpType == "Squeeze" {
			if axes == nil {
				for i, d := range in {
					if d.Known() && d.Size == 1 {
						axes = append(axes, int64(i))
					}
				}
			}
			shift := 0
			for _, v := range axes {
				v = normAxis(v, len(in))
				if int(v) == ax {
					a.opaque(n, fmt.Sprintf("%s squeezes the channel axis", label(n)))
					return nil
				}
				if int(v) < ax {
					shift++
				}
			}
			a.setOut(n, 0, &layout{axis: ax - shift, refs: l.refs, flat: l.flat})
			return nil
		}
		sorted := append([]int64(nil), axes...)
		for i := range sorted {
			sorted[i] = normAxis(sorted[i], len(out))
		}
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		for _, v := range sorted {
			if int(v) <= ax {
				ax++
			}
		}
		a.setOut(n, 0, &layout{axis: ax, refs: l.refs})
		return nil
	case n.OpType == "Pad":
		l := a.layouts[x]
		if l == nil {
			return nil
		}
		pads := n.Ints("pads")
		rank := len(a.shape(x))
		if pads == nil || len(pads) != 2*rank || n.Input(3) != "" {
			a.opaque(n, fmt.Sprintf("%s has pads chanopt cannot resolve", label(n)))
			return nil
		}
		if pads[l.axis] != 0 || pads[l.axis+rank] != 0 {
			a.opaque(n, fmt.Sprintf("%s pads the channel axis", label(n)))
			return nil
		}
		a.setOut(n, 0, l)
		return nil
	case n.OpType == "Resize" || n.OpType == "Upsample":
		l := a.layouts[x]
		if l == nil {
			return nil
		}
		in, out := a.shape(x), a.shape(n.Outputs[0])
		if l.flat != nil || len(in) != len(out) || in[l.axis] != out[l.axis] {
			a.opaque(n, fmt.Sprintf("%s resizes the channel axis", label(n)))
			return nil
		}
		a.setOut(n, 0, l)
		return nil
	case n.OpType == "ReduceMean" || n.OpType == "ReduceSum" || n.OpType == "ReduceMax" || n.OpType == "ReduceMin":
		l := a.layouts[x]
		if l == nil {
			return nil
		}
		axes := n.Ints("axes")
		rank := len(a.shape(x))
		if l.flat != nil || (axes == nil && (n.Input(1) != "" || n.Int("noop_with_empty_axes", 0) == 0)) {
			a.opaque(n, fmt.Sprintf("%s reduces over the channel axis", label(n)))
			return nil
		}
		keep := n.Int("keepdims", 1) != 0
		ax := l.axis
		for _, v := range axes {
			v = normAxis(v, rank)
			if int(v) == l.axis {
				a.opaque(n, fmt.Sprintf("%s reduces over the channel axis", label(n)))
				return nil
			}
			if int(v) < l.axis && !keep {
				ax--
			}
		}
		a.setOut(n, 0, &layout{axis: ax, refs: l.refs})
		return nil
	case n.OpType == "Softmax" || n.OpType == "LogSoftmax" || n.OpType == "Hardmax":
		l := a.layouts[x]
		if l == nil {
			return nil
		}
		rank := len(a.shape(x))
		def := int64(-1)
		if a.Model.Opset() < 13 {
			def = 1
		}
		axis := normAxis(n.Int("axis", def), rank)
		if a.Model.Opset() < 13 && int(axis) <= l.axis || int(axis) == l.axis {
			a.opaque(n, fmt.Sprintf("%s normalises over the channel axis", label(n)))
			return nil
		}
		a.setOut(n, 0, l)
		return nil
	case n.OpType == "Shape" || n.OpType == "Size":
		// Shapes computed at run time follow the slimmer tensors by themselves.
		return nil
	}
	a.opaque(n, fmt.Sprintf("op %s at node %s is not known to chanopt's dependency rules", n.OpType, n.Label()))
	return nil
}

func normAxis(v int64, rank int) int64 {
	if v < 0 {
		v += int64(rank)
	}
	return v
}

func (a *Analysis) conv(n *onnx.Node) error {
	x, w := n.Input(0), n.Input(1)
	wt, ok := a.Model.Graph.Inits[w]
	lx := a.get(x, fmt.Sprintf("input of %s", label(n)))
	if !ok || len(wt.Dims) < 3 || lx == nil || lx.axis != 1 || lx.flat != nil {
		a.opaque(n, fmt.Sprintf("%s has a computed weight or an unmapped input", label(n)))
		return nil
	}
	group := int(n.Int("group", 1))
	cout, cinPerGroup := int(wt.Dims[0]), int(wt.Dims[1])
	cin := len(lx.refs)
	bias := n.Input(2)
	switch {
	case group == 1:
		a.add(action{kind: sliceAxis, node: n, role: "in", tensor: w, input: 1, axis: 1, refs: lx.refs})
	case group == cin && cout == cin && cinPerGroup == 1:
		// depthwise: output channel c reads input channel c only
		a.add(action{kind: sliceAxis, node: n, role: "depthwise", tensor: w, input: 1, axis: 0, refs: lx.refs})
		if bias != "" {
			a.add(action{kind: sliceAxis, node: n, role: "param", tensor: bias, input: 2, axis: 0, refs: lx.refs})
		}
		a.setOut(n, 0, &layout{axis: 1, refs: lx.refs})
		return nil
	case group == cin:
		a.opaque(n, fmt.Sprintf("%s is depthwise with channel multiplier %d", label(n), cout/cin))
		return nil
	default:
		if cin%group != 0 || cout%group != 0 {
			return fmt.Errorf("group %d does not divide channels %d→%d", group, cin, cout)
		}
		a.block(lx.refs, group, label(n))
		a.add(action{kind: sliceGroupedIn, node: n, role: "in", tensor: w, input: 1, axis: 1, refs: lx.refs, groups: group})
	}
	if bias != "" && !a.isConst(bias) {
		a.opaque(n, fmt.Sprintf("%s has a computed bias", label(n)))
		return nil
	}
	out := a.newSpace(cout, label(n))
	if group > 1 {
		a.block(out, group, label(n))
	}
	a.add(action{kind: sliceAxis, node: n, role: "out", tensor: w, input: 1, axis: 0, refs: out})
	if bias != "" {
		a.add(action{kind: sliceAxis, node: n, role: "out", tensor: bias, input: 2, axis: 0, refs: out})
	}
	a.setOut(n, 0, &layout{axis: 1, refs: out})
	return nil
}

// block records that refs split into `blocks` equal blocks that must shrink equally.
func (a *Analysis) block(refs []int, blocks int, by string) {
	per := len(refs) / blocks
	for i, e := range refs {
		a.blockTags = append(a.blockTags, blockNote{elem: e, tag: blockTag{blocks: blocks, block: i / per, by: by}})
	}
}

func (a *Analysis) convTranspose(n *onnx.Node) error {
	x, w := n.Input(0), n.Input(1)
	wt, ok := a.Model.Graph.Inits[w]
	lx := a.get(x, fmt.Sprintf("input of %s", label(n)))
	bias := n.Input(2)
	if !ok || len(wt.Dims) < 3 || lx == nil || lx.axis != 1 || lx.flat != nil || n.Int("group", 1) != 1 ||
		(bias != "" && !a.isConst(bias)) {
		a.opaque(n, fmt.Sprintf("%s is grouped or has computed weights", label(n)))
		return nil
	}
	a.add(action{kind: sliceAxis, node: n, role: "in", tensor: w, input: 1, axis: 0, refs: lx.refs})
	out := a.newSpace(int(wt.Dims[1]), label(n))
	a.add(action{kind: sliceAxis, node: n, role: "out", tensor: w, input: 1, axis: 1, refs: out})
	if bias != "" {
		a.add(action{kind: sliceAxis, node: n, role: "out", tensor: bias, input: 2, axis: 0, refs: out})
	}
	a.setOut(n, 0, &layout{axis: 1, refs: out})
	return nil
}

func (a *Analysis) gemm(n *onnx.Node) error {
	x, w := n.Input(0), n.Input(1)
	wt, ok := a.Model.Graph.Inits[w]
	xs := a.shape(x)
	lx := a.layouts[x]
	why := fmt.Sprintf("%s has a computed weight or a batched input", label(n))
	if !ok || len(wt.Dims) != 2 || len(xs) != 2 || n.Int("transA", 0) != 0 || (lx != nil && lx.axis != 1) {
		a.opaque(n, why)
		return nil
	}
	inAxis, outAxis := 0, 1
	if n.OpType == "Gemm" && n.Int("transB", 0) != 0 {
		inAxis, outAxis = 1, 0
	}
	if lx == nil {
		lx = a.get(x, fmt.Sprintf("input of %s", label(n)))
	}
	if lx != nil {
		a.add(action{kind: sliceAxis, node: n, role: "in", tensor: w, input: 1, axis: inAxis, refs: lx.refs, flat: lx.flat})
	}
	c := n.Input(2)
	if n.OpType == "Gemm" && c != "" && !a.isConst(c) {
		a.opaque(n, fmt.Sprintf("%s has a computed bias", label(n)))
		return nil
	}
	out := a.newSpace(int(wt.Dims[outAxis]), label(n))
	a.add(action{kind: sliceAxis, node: n, role: "out", tensor: w, input: 1, axis: outAxis, refs: out})
	if n.OpType == "Gemm" && c != "" {
		ct := a.Model.Graph.Inits[c]
		if len(ct.Dims) > 0 && ct.Dims[len(ct.Dims)-1] == int64(len(out)) {
			a.add(action{kind: sliceAxis, node: n, role: "out", tensor: c, input: 2, axis: len(ct.Dims) - 1, refs: out})
		} else if ct.NumElements() != 1 {
			a.pin(out, fmt.Sprintf("%s has a bias of shape %v", label(n), ct.Dims))
		}
	}
	a.setOut(n, 0, &layout{axis: 1, refs: out})
	return nil
}

// elementwise joins same-shape operands channel by channel and slices per-channel constants.
func (a *Analysis) elementwise(n *onnx.Node) error {
	out := a.shape(n.Outputs[0])
	if out == nil {
		a.opaque(n, fmt.Sprintf("%s has an unknown output shape", label(n)))
		return nil
	}
	var joined *layout
	for _, in := range n.Inputs {
		if l := a.layouts[in]; l != nil && l.flat == nil {
			s := a.shape(in)
			ax := l.axis + len(out) - len(s)
			if joined == nil {
				joined = &layout{axis: ax, refs: l.refs}
			}
		}
	}
	if joined == nil {
		// No operand carries traced channels: nothing to join (constants or pinned values only).
		for _, in := range n.Inputs {
			if l := a.layouts[in]; l != nil {
				a.opaque(n, fmt.Sprintf("%s combines a flattened map", label(n)))
				return nil
			}
		}
		a.get(n.Outputs[0], fmt.Sprintf("output of %s", label(n)))
		return nil
	}
	C := len(joined.refs)
	for i, in := range n.Inputs {
		if in == "" {
			continue
		}
		s := a.shape(in)
		if s == nil {
			a.opaque(n, fmt.Sprintf("%s has an operand of unknown shape", label(n)))
			return nil
		}
		ax := joined.axis - (len(out) - len(s)) // this operand's axis aligned with the channel axis
		if ax < 0 || (s[ax].Known() && s[ax].Size == 1) {
			continue // broadcast along the channels: passes
		}
		if !s[ax].Known() || int(s[ax].Size) != C {
			a.opaque(n, fmt.Sprintf("%s has an operand of shape %v", label(n), s))
			return nil
		}
		if a.isConst(in) {
			a.add(action{kind: sliceAxis, node: n, role: "param", tensor: in, input: i, axis: ax, refs: joined.refs})
			continue
		}
		l := a.layouts[in]
		if l == nil || l.flat != nil || l.axis != ax {
			l = a.get(in, fmt.Sprintf("operand of %s", label(n)))
			if l == nil || l.axis != ax || l.flat != nil {
				a.opaque(n, fmt.Sprintf("%s combines channels along different axes", label(n)))
				return nil
			}
		}
		for j := range l.refs {
			a.union(l.refs[j], joined.refs[j])
		}
	}
	if n.OpType == "PRelu" {
		a.setOut(n, 0, joined)
		return nil
	}
	a.setOut(n, 0, joined)
	return nil
}

func (a *Analysis) concat(n *onnx.Node) error {
	out := a.shape(n.Outputs[0])
	if out == nil {
		a.opaque(n, fmt.Sprintf("%s has an unknown output shape", label(n)))
		return nil
	}
	axis := int(normAxis(n.Int("axis", 0), len(out)))
	var first *layout
	for _, in := range n.Inputs {
		if l := a.layouts[in]; l != nil {
			first = l
			break
		}
	}
	if first == nil {
		return nil // a concat of shapes or constants
	}
	if first.flat != nil {
		a.opaque(n, fmt.Sprintf("%s concatenates flattened maps", label(n)))
		return nil
	}
	if axis != first.axis {
		// Along another axis every input carries the same channels.
		for _, in := range n.Inputs {
			l := a.get(in, fmt.Sprintf("operand of %s", label(n)))
			if l == nil || l.axis != first.axis || len(l.refs) != len(first.refs) || l.flat != nil {
				a.opaque(n, fmt.Sprintf("%s joins maps of different channels", label(n)))
				return nil
			}
			for j := range l.refs {
				a.union(l.refs[j], first.refs[j])
			}
		}
		a.setOut(n, 0, first)
		return nil
	}
	var refs []int
	for _, in := range n.Inputs {
		if in == "" {
			continue
		}
		l := a.get(in, fmt.Sprintf("constant operand of %s", label(n)))
		if l == nil && a.isConst(in) {
			t := a.Model.Graph.Inits[in]
			if len(t.Dims) > axis {
				c := a.newSpace(int(t.Dims[axis]), label(n))
				a.pin(c, fmt.Sprintf("%s concatenates a constant", label(n)))
				refs = append(refs, c...)
				continue
			}
		}
		if l == nil || l.axis != axis || l.flat != nil {
			a.opaque(n, fmt.Sprintf("%s concatenates maps chanopt cannot map", label(n)))
			return nil
		}
		refs = append(refs, l.refs...)
	}
	a.setOut(n, 0, &layout{axis: axis, refs: refs})
	return nil
}

func (a *Analysis) split(n *onnx.Node) error {
	l := a.layouts[n.Input(0)]
	if l == nil {
		return nil
	}
	rank := len(a.shape(n.Input(0)))
	axis := int(normAxis(n.Int("axis", 0), rank))
	if axis != l.axis {
		for i := range n.Outputs {
			a.setOut(n, i, l)
		}
		return nil
	}
	if l.flat != nil || n.Input(1) != "" {
		a.opaque(n, fmt.Sprintf("%s splits channels by computed sizes", label(n)))
		return nil
	}
	var outs [][]int
	off := 0
	for i, o := range n.Outputs {
		s := a.shape(o)
		if s == nil || !s[axis].Known() {
			a.opaque(n, fmt.Sprintf("%s has outputs of unknown size", label(n)))
			return nil
		}
		size := int(s[axis].Size)
		refs := l.refs[off : off+size]
		off += size
		outs = append(outs, refs)
		a.setOut(n, i, &layout{axis: axis, refs: refs})
	}
	a.add(action{kind: splitSizes, node: n, role: "split", outs: outs})
	return nil
}

func (a *Analysis) slice(n *onnx.Node) error {
	l := a.layouts[n.Input(0)]
	if l == nil {
		return nil
	}
	in := a.shape(n.Input(0))
	starts, ends, axes, steps := n.Ints("starts"), n.Ints("ends"), n.Ints("axes"), n.Ints("steps")
	if starts == nil || ends == nil || n.Input(1) != "" {
		a.opaque(n, fmt.Sprintf("%s slices by computed bounds", label(n)))
		return nil
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	for i, ax := range axes {
		if int(normAxis(ax, len(in))) != l.axis {
			continue
		}
		if l.flat != nil || (steps != nil && steps[i] != 1) {
			a.opaque(n, fmt.Sprintf("%s slices channels with a step", label(n)))
			return nil
		}
		b, e, c := onnx.SliceRange(starts[i], ends[i], 1, int64(len(l.refs)))
		if c <= 0 {
			a.opaque(n, fmt.Sprintf("%s takes no channels", label(n)))
			return nil
		}
		a.add(action{kind: sliceBounds, node: n, role: "slice", refs: l.refs, dim: i, start: b, end: e})
		a.setOut(n, 0, &layout{axis: l.axis, refs: l.refs[b:e]})
		return nil
	}
	a.setOut(n, 0, l)
	return nil
}

// reshape follows Flatten and Reshape: flattening C×H×W into features (for Gemm), or reshapes that
// leave the channel axis alone.
func (a *Analysis) reshape(n *onnx.Node, vals map[string][]onnx.Dim) error {
	x := n.Input(0)
	l := a.layouts[x]
	if l == nil {
		return nil
	}
	in, out := a.shape(x), a.shape(n.Outputs[0])
	why := fmt.Sprintf("%s reshapes the channel axis", label(n))
	if in == nil || out == nil || l.flat != nil {
		a.opaque(n, why)
		return nil
	}
	C := len(l.refs)
	var target []int64
	constTarget := false
	if n.OpType == "Reshape" {
		if target = n.Ints("shape"); target != nil {
			constTarget = true
		} else if v, ok := vals[n.Input(1)]; ok {
			for _, d := range v {
				target = append(target, d.Size)
			}
		}
	}
	// Same prefix up to and including the channel axis: the channels stay where they are.
	prefixSame := len(out) > l.axis
	for i := 0; prefixSame && i <= l.axis; i++ {
		prefixSame = in[i] == out[i]
	}
	if prefixSame {
		if constTarget && len(target) > l.axis && target[l.axis] > 0 {
			a.add(action{kind: reshapeDim, node: n, role: "reshape", refs: l.refs, dim: l.axis, mult: 1})
		} else if !constTarget && n.OpType == "Reshape" && (len(target) <= l.axis || target[l.axis] != 0) {
			a.opaque(n, fmt.Sprintf("%s has a computed target", label(n)))
			return nil
		}
		a.setOut(n, 0, &layout{axis: l.axis, refs: l.refs})
		return nil
	}
	// Flatten of N×C×H×W (or N×H×W×C) into N×F.
	if len(out) == 2 && l.axis >= 1 && in[0] == out[0] && in[1:].Static() {
		spatial := int(in[1:].NumElements()) / C
		fm := &flatMap{A: spatial, B: 1, K: spatial}
		if l.axis == len(in)-1 {
			fm = &flatMap{A: 1, B: C, K: spatial}
		} else if l.axis != 1 {
			a.opaque(n, why)
			return nil
		}
		if n.OpType == "Flatten" && n.Int("axis", 1) != 1 {
			a.opaque(n, why)
			return nil
		}
		if n.OpType == "Reshape" {
			switch {
			case constTarget && target[1] > 0:
				a.add(action{kind: reshapeDim, node: n, role: "reshape", refs: l.refs, dim: 1, mult: spatial})
			case len(target) == 2 && (target[1] == -1):
			default:
				a.opaque(n, fmt.Sprintf("%s has a computed target", label(n)))
				return nil
			}
		}
		nl := &layout{axis: 1, refs: l.refs, flat: fm}
		if spatial == 1 {
			nl.flat = nil
		}
		a.setOut(n, 0, nl)
		return nil
	}
	if len(in) >= 3 && len(out) == len(in)+1 && l.axis == 1 {
		why = fmt.Sprintf("channel shuffle or channel split at %s is pinned", label(n))
	}
	a.opaque(n, why)
	return nil
}

package rewrite

import (
	"fmt"
	"sort"

	"github.com/chanopt/chanopt/onnx"
)

// Keep lists, per group, the channel indices to keep (ascending). Groups not listed keep everything.
type Keep map[GroupID][]int

// keptSet resolves Keep into a per-element decision after checking it against the groups.
func (a *Analysis) keptSet(keep Keep) (func(e int) bool, error) {
	sets := map[*Group]map[int]bool{}
	for id, idx := range keep {
		if int(id) < 0 || int(id) >= len(a.Groups) {
			return nil, fmt.Errorf("group %d does not exist", id)
		}
		g := a.Groups[id]
		if len(idx) == g.Channels {
			continue
		}
		if !g.Prunable {
			return nil, fmt.Errorf("group %d is pinned (%s)", id, g.Reason)
		}
		if len(idx) == 0 {
			return nil, fmt.Errorf("group %d would keep no channels", id)
		}
		set := make(map[int]bool, len(idx))
		for _, i := range idx {
			if i < 0 || i >= g.Channels || set[i] {
				return nil, fmt.Errorf("group %d: channel %d out of range or repeated", id, i)
			}
			set[i] = true
		}
		if g.Blocks > 1 {
			per := make([]int, g.Blocks)
			for i := range set {
				per[g.BlockOf[i]]++
			}
			for _, c := range per {
				if g.Whole && c != 0 && c != g.Step() {
					return nil, fmt.Errorf("group %d: grouped convolution keeps or drops whole blocks of %d channels, got %v", id, g.Step(), per)
				}
				if !g.Whole && c != per[0] {
					return nil, fmt.Errorf("group %d: grouped convolution needs the same number of channels in each of its %d blocks, got %v", id, g.Blocks, per)
				}
			}
		}
		sets[g] = set
	}
	kept := func(e int) bool {
		g, i := a.groupOf(e)
		if s, ok := sets[g]; ok {
			return s[i]
		}
		return true
	}
	// A group may reach a Split output or a Slice through part of its channels only; a cut that
	// keeps none of that part would leave an empty tensor.
	for _, act := range a.actions {
		switch act.kind {
		case splitSizes:
			for i, refs := range act.outs {
				if countKept(refs, kept) == 0 {
					return nil, fmt.Errorf("the cut keeps no channel of output %d of Split %s", i, act.node.Label())
				}
			}
		case sliceBounds:
			if countKept(act.refs[act.start:act.end], kept) == 0 {
				return nil, fmt.Errorf("the cut keeps no channel of Slice %s", act.node.Label())
			}
		}
	}
	return kept, nil
}

func keptPositions(refs []int, kept func(int) bool) []int {
	var pos []int
	for p, e := range refs {
		if kept(e) {
			pos = append(pos, p)
		}
	}
	return pos
}

func countKept(refs []int, kept func(int) bool) int {
	n := 0
	for _, e := range refs {
		if kept(e) {
			n++
		}
	}
	return n
}

// flatPositions lists the kept columns of a flattened map, ascending (the order the slim flatten
// produces them in).
func flatPositions(refs []int, fm *flatMap, kept func(int) bool) []int {
	var pos []int
	for c, e := range refs {
		if !kept(e) {
			continue
		}
		for k := 0; k < fm.K; k++ {
			pos = append(pos, c*fm.A+k*fm.B)
		}
	}
	sort.Ints(pos)
	return pos
}

// gather returns a copy of t keeping the given indices along axis.
func gather(t *onnx.Tensor, axis int, idx []int) (*onnx.Tensor, error) {
	if axis >= len(t.Dims) {
		return nil, fmt.Errorf("tensor %s has rank %d, cannot slice axis %d", t.Name, len(t.Dims), axis)
	}
	outer, inner := 1, 1
	for i := 0; i < axis; i++ {
		outer *= int(t.Dims[i])
	}
	for i := axis + 1; i < len(t.Dims); i++ {
		inner *= int(t.Dims[i])
	}
	n := int(t.Dims[axis])
	for _, i := range idx {
		if i >= n {
			return nil, fmt.Errorf("tensor %s: index %d beyond axis %d of size %d", t.Name, i, axis, n)
		}
	}
	dims := append([]int64(nil), t.Dims...)
	dims[axis] = int64(len(idx))
	out := &onnx.Tensor{Name: t.Name, Type: t.Type, Dims: dims, Source: t.Source}
	if t.Floats != nil {
		out.Floats = make([]float32, 0, outer*len(idx)*inner)
		for o := 0; o < outer; o++ {
			for _, i := range idx {
				base := (o*n + i) * inner
				out.Floats = append(out.Floats, t.Floats[base:base+inner]...)
			}
		}
	} else {
		out.Ints = make([]int64, 0, outer*len(idx)*inner)
		for o := 0; o < outer; o++ {
			for _, i := range idx {
				base := (o*n + i) * inner
				out.Ints = append(out.Ints, t.Ints[base:base+inner]...)
			}
		}
	}
	return out, nil
}

// Slice returns a copy of the model with only the kept channels of each group. Shared constants are
// un-shared before one user is sliced, shapes are inferred again, and dead nodes are dropped.
func (a *Analysis) Slice(keep Keep) (*onnx.Model, error) {
	out, err := a.slice(a.Model, keep)
	if err != nil {
		return nil, err
	}
	if err := reinfer(a.Model, out); err != nil {
		return nil, err
	}
	return out, nil
}

// SliceWeights cuts src as Slice cuts the analysed model, where src is a copy of it with other
// values in its constants (the same nodes, in the same order, reading the same inputs): channel
// for channel, the result keeps of src's constants what Slice keeps of the original's. Shapes are
// not inferred again, so the result is for reading constants, not for running. A weight transfer
// can thus follow each kept value back to where it came from (src holding positions, say).
func (a *Analysis) SliceWeights(src *onnx.Model, keep Keep) (*onnx.Model, error) {
	orig := a.Model.Graph.Nodes
	if src == nil || src.Graph == nil || len(src.Graph.Nodes) != len(orig) {
		return nil, fmt.Errorf("slice weights: the model does not have the analysed model's nodes")
	}
	for i, n := range src.Graph.Nodes {
		if n.OpType != orig[i].OpType || len(n.Inputs) != len(orig[i].Inputs) || n.Label() != orig[i].Label() {
			return nil, fmt.Errorf("slice weights: node %d is %s %s, the analysed model's is %s %s", i, n.OpType, n.Label(), orig[i].OpType, orig[i].Label())
		}
	}
	return a.slice(src, keep)
}

// slice is Slice on src (the analysed model or a copy with other constants), without inferring
// shapes again.
func (a *Analysis) slice(src *onnx.Model, keep Keep) (*onnx.Model, error) {
	kept, err := a.keptSet(keep)
	if err != nil {
		return nil, err
	}
	out := src.Clone()
	g := out.Graph
	nodeOf := make(map[*onnx.Node]*onnx.Node, len(g.Nodes))
	for i, n := range a.Model.Graph.Nodes {
		nodeOf[n] = g.Nodes[i]
	}
	users := map[string]int{} // reader slots per constant
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			users[in]++
		}
	}
	// A constant read by several nodes (or twice by one, as torch's merged BN constants are) gets a
	// private copy for each reader slot that is sliced, so slicing one leaves the others intact.
	private := map[string]bool{}
	tensorFor := func(n *onnx.Node, input int) (*onnx.Tensor, error) {
		name := n.Inputs[input]
		t, ok := g.Inits[name]
		if !ok {
			return nil, fmt.Errorf("node %s: input %s is not a constant", n.Label(), name)
		}
		if private[name] || (users[name] <= 1 && !g.IsOutput(name)) {
			return t, nil
		}
		p := fmt.Sprintf("%s__%s_%d", name, n.Label(), input)
		for i := 2; ; i++ {
			if _, clash := g.Values[p]; !clash {
				break
			}
			p = fmt.Sprintf("%s__%s_%d_%d", name, n.Label(), input, i)
		}
		c := t.Clone()
		c.Name, c.Source = p, nil
		g.Inits[p] = c
		g.InitOrder = append(g.InitOrder, p)
		g.Values[p] = &onnx.Value{Name: p, Type: c.Type, Shape: c.Shape()}
		users[name]--
		private[p] = true
		n.Inputs[input] = p
		return c, nil
	}
	put := func(t *onnx.Tensor) {
		g.Inits[t.Name] = t
		g.Values[t.Name] = &onnx.Value{Name: t.Name, Type: t.Type, Shape: t.Shape()}
	}
	for _, act := range a.actions {
		n := nodeOf[act.node]
		switch act.kind {
		case sliceAxis:
			var pos []int
			if act.flat != nil {
				pos = flatPositions(act.refs, act.flat, kept)
			} else {
				pos = keptPositions(act.refs, kept)
			}
			t, err := tensorFor(n, act.input)
			if err != nil {
				return nil, err
			}
			if len(pos) == int(t.Dims[act.axis]) {
				continue
			}
			if carriesInput(act.role) {
				// one group per remaining block (per remaining channel when depthwise)
				n.SetInt("group", int64(len(pos)*act.groups/len(act.refs)))
			}
			nt, err := gather(t, act.axis, pos)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", n.Label(), err)
			}
			put(nt)
		case sliceGroupedIn:
			t, err := tensorFor(n, act.input)
			if err != nil {
				return nil, err
			}
			nt, err := sliceGrouped(t, act.refs, act.groups, kept)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", n.Label(), err)
			}
			if nt != nil {
				put(nt)
			}
		case splitSizes:
			sizes := make([]int64, len(act.outs))
			for i, refs := range act.outs {
				sizes[i] = int64(countKept(refs, kept))
			}
			n.SetInts("split", sizes)
			delete(n.Attrs, "num_outputs")
		case sliceBounds:
			b := countKept(act.refs[:act.start], kept)
			e := b + countKept(act.refs[act.start:act.end], kept)
			starts := append([]int64(nil), n.Ints("starts")...)
			ends := append([]int64(nil), n.Ints("ends")...)
			starts[act.dim], ends[act.dim] = int64(b), int64(e)
			n.SetInts("starts", starts)
			n.SetInts("ends", ends)
		case reshapeDim:
			shape := append([]int64(nil), n.Ints("shape")...)
			shape[act.dim] = int64(countKept(act.refs, kept) * act.mult)
			n.SetInts("shape", shape)
		}
	}
	onnx.RemoveDeadNodes(g)
	return out, nil
}

// sliceGrouped slices the input axis of a grouped conv weight: output channel o (in block o/(C_out/g))
// keeps the kept input positions of its block. Every block must keep the same count.
func sliceGrouped(t *onnx.Tensor, refs []int, groups int, kept func(int) bool) (*onnx.Tensor, error) {
	cinPer := len(refs) / groups
	cout := int(t.Dims[0])
	outPer := cout / groups
	blocks := make([][]int, groups)
	for b := range blocks {
		for j := 0; j < cinPer; j++ {
			if kept(refs[b*cinPer+j]) {
				blocks[b] = append(blocks[b], j)
			}
		}
		if len(blocks[b]) != len(blocks[0]) {
			return nil, fmt.Errorf("grouped weight %s: blocks keep different channel counts", t.Name)
		}
	}
	if len(blocks[0]) == cinPer {
		return nil, nil
	}
	inner := 1
	for _, d := range t.Dims[2:] {
		inner *= int(d)
	}
	dims := append([]int64(nil), t.Dims...)
	dims[1] = int64(len(blocks[0]))
	out := &onnx.Tensor{Name: t.Name, Type: t.Type, Dims: dims, Source: t.Source}
	out.Floats = make([]float32, 0, cout*len(blocks[0])*inner)
	for o := 0; o < cout; o++ {
		for _, j := range blocks[o/outPer] {
			base := (o*cinPer + j) * inner
			out.Floats = append(out.Floats, t.Floats[base:base+inner]...)
		}
	}
	return out, nil
}

// reinfer recomputes the shapes of the sliced model, keeping what inference cannot reach.
func reinfer(orig, m *onnx.Model) error {
	g := m.Graph
	saved := map[string]onnx.Shape{}
	for name, v := range g.Values {
		if _, isInit := g.Inits[name]; isInit || g.IsInput(name) {
			continue
		}
		saved[name] = v.Shape
		v.Shape = nil
		if src, ok := orig.Graph.Values[name]; ok && g.IsOutput(name) {
			v.Shape = src.Shape.Clone() // outputs are pinned: their declared shape stays
		}
	}
	res, err := onnx.InferShapes(m, onnx.InferOptions{Lenient: true})
	if err != nil {
		return fmt.Errorf("sliced model: %w", err)
	}
	_ = res
	for name, s := range saved {
		if v := g.Values[name]; v != nil && v.Shape == nil {
			v.Shape = s
		}
	}
	return nil
}

// Mask returns a copy of the model in which the channels not kept contribute nothing, without
// removing them: their producing filters and biases, BN scales and shifts, and per-channel
// constants are zero (each rule marks which of its constants silence a channel when zeroed). Used
// to prove Slice exact: the slim model must compute what the masked one does. The proof holds where
// the ops between a channel's producers and its consumers map zero to zero (Relu, Tanh, SE gates,
// pooling, …); a Sigmoid on a trunk channel would turn the masked zero into 0.5.
func (a *Analysis) Mask(keep Keep) (*onnx.Model, error) {
	kept, err := a.keptSet(keep)
	if err != nil {
		return nil, err
	}
	out := a.Model.Clone()
	g := out.Graph
	nodeOf := make(map[*onnx.Node]*onnx.Node, len(g.Nodes))
	for i, n := range a.Model.Graph.Nodes {
		nodeOf[n] = g.Nodes[i]
	}
	zeroed := map[string]bool{}
	for _, act := range a.actions {
		if act.kind != sliceAxis || act.flat != nil || !act.masks {
			continue // the rule that recorded the action says whether zeroing silences the channels
		}
		n := nodeOf[act.node]
		name := n.Inputs[act.input]
		t := g.Inits[name]
		// Shared constants get a private copy so masking one user leaves the others intact.
		key := name + "\x00" + n.Label()
		if !zeroed[key] {
			c := t.Clone()
			c.Name, c.Source = name+"__mask_"+n.Label(), nil
			g.Inits[c.Name] = c
			g.InitOrder = append(g.InitOrder, c.Name)
			g.Values[c.Name] = &onnx.Value{Name: c.Name, Type: c.Type, Shape: c.Shape()}
			for i, in := range n.Inputs {
				if in == name {
					n.Inputs[i] = c.Name
				}
			}
			zeroed[key] = true
			t = c
		} else {
			name = n.Inputs[act.input]
			t = g.Inits[name]
		}
		outer, inner := 1, 1
		for i := 0; i < act.axis; i++ {
			outer *= int(t.Dims[i])
		}
		for i := act.axis + 1; i < len(t.Dims); i++ {
			inner *= int(t.Dims[i])
		}
		size := int(t.Dims[act.axis])
		for p, e := range act.refs {
			if kept(e) {
				continue
			}
			for o := 0; o < outer; o++ {
				base := (o*size + p) * inner
				for k := 0; k < inner; k++ {
					t.Floats[base+k] = 0
				}
			}
		}
	}
	onnx.RemoveDeadInitializers(g)
	return out, nil
}

// Correspondence says, for one Conv/ConvTranspose/Gemm/MatMul of the original model, which of its
// output channels and weight-input positions the slim model keeps, in order: the slim node's
// output channel j is the original's Out[j]. Nil means all are kept.
type Correspondence struct {
	Out, In []int
}

// Correspond maps each weighted node (by label) of the original to what the slim model keeps.
func (a *Analysis) Correspond(keep Keep) (map[string]Correspondence, error) {
	kept, err := a.keptSet(keep)
	if err != nil {
		return nil, err
	}
	out := map[string]Correspondence{}
	for _, act := range a.actions {
		if act.input != 1 || (act.kind != sliceAxis && act.kind != sliceGroupedIn) {
			continue
		}
		c := out[act.node.Label()]
		var pos []int
		switch {
		case act.flat != nil:
			pos = flatPositions(act.refs, act.flat, kept)
		default:
			pos = keptPositions(act.refs, kept)
		}
		switch act.role {
		case "out", "depthwise", "grouped":
			c.Out = pos
		case "in":
			c.In = pos
		}
		out[act.node.Label()] = c
	}
	return out, nil
}

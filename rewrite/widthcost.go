package rewrite

import "github.com/chanopt/chanopt/onnx"

// refShare says how many channels of each group a list of channel elements holds, so the number a
// slice keeps can be predicted from group widths alone.
type refShare struct {
	total  int
	groups []GroupID
	counts []int
	others int // elements outside any group: always kept
}

func (a *Analysis) share(refs []int) refShare {
	s := refShare{total: len(refs)}
	index := map[GroupID]int{}
	for _, e := range refs {
		g, _ := a.groupOf(e)
		if g == nil {
			s.others++
			continue
		}
		i, ok := index[g.ID]
		if !ok {
			i = len(s.groups)
			index[g.ID] = i
			s.groups = append(s.groups, g.ID)
			s.counts = append(s.counts, 0)
		}
		s.counts[i]++
	}
	return s
}

// fraction is the share of the elements kept when group g keeps the fraction kept[g].
func (s refShare) fraction(kept []float64) float64 {
	if s.total == 0 {
		return 1
	}
	k := float64(s.others)
	for i, g := range s.groups {
		k += float64(s.counts[i]) * kept[g]
	}
	return k / float64(s.total)
}

// WidthCost predicts a slim model's MACs and params from group widths without slicing it: every
// Conv/Gemm's work scales with the kept share of its input and output channels, every sliced
// constant with the kept share along each sliced axis. The prediction is exact when each group's
// channels all lie within the slices that touch them (the usual case); the optimizer confirms its
// final choice by slicing.
type WidthCost struct {
	channels []int // per group ID
	nodes    []scaledCost
	params   []scaledCost
	fixed    int64 // params no group touches
}

type scaledCost struct {
	base   float64
	shares []refShare
}

func (c scaledCost) eval(kept []float64) float64 {
	v := c.base
	for _, s := range c.shares {
		v *= s.fraction(kept)
	}
	return v
}

// WidthCost builds the predictor. macs gives each node's MACs in the original model (from
// onnx.NodeMACsAt at the budget's input shapes).
func (a *Analysis) WidthCost(macs map[*onnx.Node]int64) *WidthCost {
	wc := &WidthCost{}
	for _, grp := range a.Groups {
		wc.channels = append(wc.channels, grp.Channels)
	}
	g := a.Model.Graph
	byNode := map[*onnx.Node][]*action{}
	for i := range a.actions {
		act := &a.actions[i]
		if act.kind == sliceAxis || act.kind == sliceGroupedIn {
			byNode[act.node] = append(byNode[act.node], act)
		}
	}
	for _, n := range g.Nodes {
		base := macs[n]
		if base == 0 {
			continue
		}
		c := scaledCost{base: float64(base)}
		for _, act := range byNode[n] {
			// The weight's in and out slices (and a depthwise filter's one) scale the work.
			if act.input == 1 && (act.role == "in" || act.role == "out" || carriesInput(act.role)) {
				c.shares = append(c.shares, a.share(act.refs))
			}
		}
		wc.nodes = append(wc.nodes, c)
	}
	type slot struct {
		node  *onnx.Node
		input int
	}
	slots := map[string]map[slot][]*action{}
	for i := range a.actions {
		act := &a.actions[i]
		if act.kind != sliceAxis && act.kind != sliceGroupedIn {
			continue
		}
		if slots[act.tensor] == nil {
			slots[act.tensor] = map[slot][]*action{}
		}
		s := slot{act.node, act.input}
		slots[act.tensor][s] = append(slots[act.tensor][s], act)
	}
	readers := map[string]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			readers[in]++
		}
	}
	for name, t := range g.Inits {
		if !t.Type.IsFloat() {
			continue
		}
		size := t.NumElements()
		sliced := slots[name]
		if len(sliced) == 0 {
			wc.fixed += size
			continue
		}
		for _, acts := range sliced {
			c := scaledCost{base: float64(size)}
			for _, act := range acts {
				c.shares = append(c.shares, a.share(act.refs))
			}
			wc.params = append(wc.params, c)
		}
		if readers[name] > len(sliced) {
			wc.fixed += size // readers that slice nothing keep the original
		}
	}
	wc.fixed += onnx.CountParams(a.Model) - sumFloatInits(g)
	return wc
}

func sumFloatInits(g *onnx.Graph) int64 {
	var n int64
	for _, t := range g.Inits {
		if t.Type.IsFloat() {
			n += t.NumElements()
		}
	}
	return n
}

// Eval predicts MACs and params at the given widths (groups not listed keep all channels).
func (wc *WidthCost) Eval(widths map[GroupID]int) (macs, params float64) {
	kept := make([]float64, len(wc.channels))
	for i, c := range wc.channels {
		kept[i] = 1
		if w, ok := widths[GroupID(i)]; ok {
			kept[i] = float64(w) / float64(c)
		}
	}
	for _, c := range wc.nodes {
		macs += c.eval(kept)
	}
	params = float64(wc.fixed)
	for _, c := range wc.params {
		params += c.eval(kept)
	}
	return macs, params
}

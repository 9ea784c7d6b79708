package rewrite

import (
	"fmt"
	"sort"
	"strings"
)

// spaceOf returns the index of the space an element belongs to.
func (a *Analysis) spaceOf(e int) int {
	return sort.Search(len(a.spaces), func(i int) bool { return a.spaces[i].base+a.spaces[i].size > e })
}

// buildGroups turns the union-find forest into groups: components touching the same set of spaces
// form one group, ordered by their first element.
func (a *Analysis) buildGroups() {
	// Only channels some node slices form groups; the rest (axes an opaque op merely passes on)
	// have nothing to shrink.
	touched := map[int]bool{}
	for _, act := range a.actions {
		for _, e := range act.refs {
			touched[a.find(e)] = true
		}
		for _, o := range act.outs {
			for _, e := range o {
				touched[a.find(e)] = true
			}
		}
	}
	members := map[int][]int{} // root → elements
	for e := range a.parent {
		r := a.find(e)
		if touched[r] {
			members[r] = append(members[r], e)
		}
	}
	type comp struct {
		root, first int
		sig         string
	}
	var comps []comp
	for r, es := range members {
		seen := map[int]bool{}
		var sp []string
		for _, e := range es {
			s := a.spaceOf(e)
			if !seen[s] {
				seen[s] = true
				sp = append(sp, fmt.Sprint(s))
			}
		}
		sort.Strings(sp)
		comps = append(comps, comp{root: r, first: es[0], sig: strings.Join(sp, ",")})
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i].first < comps[j].first })
	bySig := map[string]*Group{}
	a.compGroup = map[int]*Group{}
	a.compIndex = map[int]int{}
	a.Groups = nil
	for _, c := range comps {
		g, ok := bySig[c.sig]
		if !ok {
			g = &Group{ID: GroupID(len(a.Groups)), Prunable: true}
			bySig[c.sig] = g
			a.Groups = append(a.Groups, g)
		}
		a.compGroup[c.root] = g
		a.compIndex[c.root] = len(g.comps)
		g.comps = append(g.comps, c.root)
		g.Channels++
		if reason, pinned := a.pinned[c.root]; pinned && g.Prunable {
			g.Prunable, g.Reason = false, reason
		}
	}
	a.resolveBlocks()
	a.listMembers()
}

// resolveBlocks checks the equal-blocks constraints of grouped convolutions on each group.
func (a *Analysis) resolveBlocks() {
	// per group, per constraint source: channel index → block
	byGroup := map[*Group]map[string]*blockSource{}
	for _, bn := range a.blockTags {
		r := a.find(bn.elem)
		g := a.compGroup[r]
		if g == nil {
			continue
		}
		if byGroup[g] == nil {
			byGroup[g] = map[string]*blockSource{}
		}
		s := byGroup[g][bn.tag.by]
		if s == nil {
			s = &blockSource{blocks: bn.tag.blocks, size: bn.tag.size, whole: bn.tag.whole, of: map[int]int{}}
			byGroup[g][bn.tag.by] = s
		}
		s.of[a.compIndex[r]] = bn.tag.block
	}
	for g, srcs := range byGroup {
		names := make([]string, 0, len(srcs))
		for k := range srcs {
			names = append(names, k)
		}
		sort.Strings(names)
		first := srcs[names[0]]
		ok := len(first.of) == g.Channels
		for _, name := range names[1:] {
			s := srcs[name]
			if s.blocks != first.blocks || s.whole != first.whole || len(s.of) != g.Channels {
				ok = false
				break
			}
			// The same partition, possibly numbered differently.
			m := map[int]int{}
			for ch, b := range first.of {
				if prev, seen := m[b]; seen && prev != s.of[ch] {
					ok = false
				}
				m[b] = s.of[ch]
			}
		}
		if !ok {
			if g.Prunable {
				g.Prunable, g.Reason = false, fmt.Sprintf("grouped convolutions %s split these channels in different ways", strings.Join(names, ", "))
			}
			continue
		}
		if first.whole {
			// Blocks go whole only where the group holds all of each block it touches: a Concat
			// of other groups into one block would need them to drop it jointly.
			if !first.full() {
				if g.Prunable {
					g.Prunable, g.Reason = false, fmt.Sprintf("grouped convolution %s has blocks shared with other channel groups", names[0])
				}
				continue
			}
			g.Whole = true
			g.BlockOf = make([]int, g.Channels)
			dense := map[int]int{} // the conv's block numbers, renumbered in channel order
			for ch := range g.Channels {
				b, seen := dense[first.of[ch]]
				if !seen {
					b = len(dense)
					dense[first.of[ch]] = b
				}
				g.BlockOf[ch] = b
			}
			g.Blocks = len(dense)
			if g.Blocks == 1 && g.Prunable {
				g.Prunable, g.Reason = false, fmt.Sprintf("these channels are one block of grouped convolution %s", names[0])
			}
			continue
		}
		// Keeping the same count in each block keeps a grouped conv's blocks equal only when the
		// group fills every block equally; a group that shares the blocks with other groups
		// unevenly (a Concat before a grouped conv) would need a joint constraint.
		uneven := ""
		for _, name := range names {
			if !srcs[name].even(g.Channels) {
				uneven = name
				break
			}
		}
		if uneven != "" {
			if g.Prunable {
				g.Prunable, g.Reason = false, fmt.Sprintf("grouped convolution %s spreads these channels unevenly over its %d blocks", uneven, srcs[uneven].blocks)
			}
			continue
		}
		g.Blocks = first.blocks
		g.BlockOf = make([]int, g.Channels)
		for ch, b := range first.of {
			g.BlockOf[ch] = b
		}
	}
}

// blockSource is how one grouped conv splits a group's channels: channel index → block.
type blockSource struct {
	blocks, size int
	whole        bool
	of           map[int]int
}

// full says whether every block that holds a channel of the group holds only the group's channels.
func (s *blockSource) full() bool {
	counts := map[int]int{}
	for _, b := range s.of {
		counts[b]++
	}
	for _, c := range counts {
		if c != s.size {
			return false
		}
	}
	return true
}

// even says whether every block holds the same share of the group's channels.
func (s *blockSource) even(channels int) bool {
	if channels%s.blocks != 0 {
		return false
	}
	counts := make([]int, s.blocks)
	for _, b := range s.of {
		counts[b]++
	}
	for _, c := range counts {
		if c != channels/s.blocks {
			return false
		}
	}
	return true
}

// listMembers names, for each group, the nodes that touch its channels.
func (a *Analysis) listMembers() {
	seen := map[*Group]map[string]bool{}
	addMember := func(g *Group, m string) {
		if seen[g] == nil {
			seen[g] = map[string]bool{}
		}
		if !seen[g][m] {
			seen[g][m] = true
			g.Members = append(g.Members, m)
		}
	}
	for _, act := range a.actions {
		refs := act.refs
		if act.kind == splitSizes {
			for _, o := range act.outs {
				refs = append(append([]int(nil), refs...), o...)
			}
		}
		m := fmt.Sprintf("%s %s (%s)", act.node.OpType, act.node.Label(), act.role)
		for _, e := range refs {
			if g := a.compGroup[a.find(e)]; g != nil {
				if !seen[g][m] && act.input == 1 {
					switch act.role {
					case "out", "depthwise", "grouped":
						g.Producers = append(g.Producers, act.node.Label())
					case "in":
						g.Consumers = append(g.Consumers, act.node.Label())
					}
				}
				addMember(g, m)
			}
		}
	}
	for _, g := range a.Groups {
		if g.Members == nil {
			g.Members = []string{}
		}
	}
}

// GroupOf returns the group and channel index of a layout element (for tests and reports).
func (a *Analysis) groupOf(e int) (*Group, int) {
	r := a.find(e)
	return a.compGroup[r], a.compIndex[r]
}

// Prunable returns the groups that may shrink.
func (a *Analysis) Prunable() []*Group {
	var out []*Group
	for _, g := range a.Groups {
		if g.Prunable {
			out = append(out, g)
		}
	}
	return out
}

// ProducerSlice is one producer's filter for one channel of a group: the weights that make it.
type ProducerSlice struct {
	Group   GroupID
	Channel int
	Node    string
	Values  []float32
}

// ProducerSlices lists the filters that produce each group channel (conv and Gemm weight rows,
// depthwise filters), for importance scores.
func (a *Analysis) ProducerSlices() []ProducerSlice {
	var out []ProducerSlice
	g := a.Model.Graph
	for _, act := range a.actions {
		if act.kind != sliceAxis || act.input != 1 || (act.role != "out" && !carriesInput(act.role)) {
			continue
		}
		t := g.Inits[act.tensor]
		if t == nil || t.Floats == nil {
			continue
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
			grp, ch := a.groupOf(e)
			if grp == nil {
				continue
			}
			vals := make([]float32, 0, outer*inner)
			for o := 0; o < outer; o++ {
				base := (o*size + p) * inner
				vals = append(vals, t.Floats[base:base+inner]...)
			}
			out = append(out, ProducerSlice{Group: grp.ID, Channel: ch, Node: act.node.Label(), Values: vals})
		}
	}
	return out
}

// ConsumerSlice is where one consumer reads one channel of a group: the positions along the input
// axis of its weight (a Conv's input channel; a Gemm's or MatMul's input rows, several when the
// channel was flattened with its spatial positions).
type ConsumerSlice struct {
	Group   GroupID
	Channel int
	Node    string
	// Inputs are positions along the weight's input axis: axis 1 of a Conv weight (over all the
	// conv's input channels, grouped or not), the input axis of a Gemm/MatMul weight.
	Inputs []int
}

// ConsumerSlices lists, for each channel of each group, the weight positions of every node that
// reads it (the inputs Slice cuts), for importance scores that look at what a channel feeds.
func (a *Analysis) ConsumerSlices() []ConsumerSlice {
	var out []ConsumerSlice
	for _, act := range a.actions {
		if act.input != 1 || act.role != "in" || (act.kind != sliceAxis && act.kind != sliceGroupedIn) {
			continue
		}
		for p, e := range act.refs {
			grp, ch := a.groupOf(e)
			if grp == nil {
				continue
			}
			var pos []int
			if act.flat != nil {
				for k := 0; k < act.flat.K; k++ {
					pos = append(pos, p*act.flat.A+k*act.flat.B)
				}
			} else {
				pos = []int{p}
			}
			out = append(out, ConsumerSlice{Group: grp.ID, Channel: ch, Node: act.node.Label(), Inputs: pos})
		}
	}
	return out
}

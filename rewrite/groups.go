package rewrite

import (
	"fmt"

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
	// must all keep the same number of channels, or, when Whole, are each kept or dropped whole (a
	// block-diagonal conv's groups); BlockOf gives each channel's block.
	Blocks  int   `json:"blocks,omitempty"`
	Whole   bool  `json:"whole_blocks,omitempty"`
	BlockOf []int `json:"-"`
	// Producers and Consumers name the nodes whose weights make and read the group's channels.
	Producers []string `json:"-"`
	Consumers []string `json:"-"`
	// comps are the union-find roots of the group's channels, in channel order.
	comps []int
}

// Step is the least a width can change by: one block when blocks go whole, one channel of every
// block when they thin equally, one channel otherwise. Every width of the group is a multiple.
func (g *Group) Step() int {
	switch {
	case g.Whole:
		return g.Channels / max(g.Blocks, 1)
	case g.Blocks > 1:
		return g.Blocks
	}
	return 1
}

// BlockMembers lists the channels of each block, in channel order (nil without blocks).
func (g *Group) BlockMembers() [][]int {
	if g.Blocks < 1 {
		return nil
	}
	members := make([][]int, g.Blocks)
	for c, b := range g.BlockOf {
		members[b] = append(members[b], c)
	}
	return members
}

// BlockDiagonal says whether a conv with these channels and groups is block-diagonal: several
// groups, each reading and writing as many channels (depthwise: one each). Its output carries its
// input's channels, and it shrinks by whole groups.
func BlockDiagonal(group, cin, cout int) bool { return group > 1 && cout == cin && cin%group == 0 }

// carriesInput says whether an action's role is the weight of a block-diagonal conv ("depthwise"
// with one channel per group, "grouped" with more), whose output carries its input's channels.
func carriesInput(role string) bool { return role == "depthwise" || role == "grouped" }

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
	// intValues is what shape inference knows of small integer tensors (Reshape targets).
	intValues map[string][]onnx.Dim
}

type blockNote struct {
	elem int
	tag  blockTag
}

type blockTag struct {
	blocks, block int
	size          int // channels per block
	by            string
	whole         bool // blocks are kept or dropped whole, not thinned equally
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
	groups int     // sliceGroupedIn and a block-diagonal conv's weight: the conv's group count
	outs   [][]int // splitSizes: each output's refs
	dim    int     // reshapeDim: the target dim; sliceBounds: the axis
	mult   int     // reshapeDim: elements per channel
	// sliceBounds: the original start and end on the channel axis
	start, end int64
	// masks says that zeroing this constant at the dropped positions silences those channels, so
	// Mask zeroes it. The rule that records the action knows: a filter or a BN scale does, a BN
	// mean or a divisor does not.
	masks bool
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
	a := &Analysis{Model: m, pinned: map[int]string{}, layouts: map[string]*layout{}, intValues: res.IntValues}
	g := m.Graph
	// Graph inputs get their (pinned) channels when a consumer reads them: only the consumer knows
	// which axis holds them (an NHWC input goes through a Transpose first).
	for _, n := range g.Nodes {
		if err := a.visit(n); err != nil {
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

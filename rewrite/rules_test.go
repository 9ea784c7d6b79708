package rewrite_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// buildBlockDiagonal builds a conv, a block-diagonal grouped conv (4 groups of 2 → 2, RegNet's
// kind) and a conv.
func buildBlockDiagonal(b *graphBuilder) {
	x := b.input("x", 2, 3, 8, 8)
	gc := b.conv("gc", b.conv("c1", x, 3, 8, 3, 1), 8, 8, 3, 4)
	b.output(b.conv("c2", gc, 8, 4, 1, 1))
}

// blockDiagonalGroups are buildBlockDiagonal's groups: the grouped conv carries its input's
// channels, in 4 blocks.
var blockDiagonalGroups = []wantGroup{
	{3, inputPinned, 0, []string{"Conv c1 (in)"}},
	{8, "", 4, []string{"Conv c1 (out)", "Conv gc (grouped)", "Conv gc (param)", "Conv c2 (in)"}},
	{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
}

// wantGroup is what a rule test expects of one group, in the order Groups lists them.
type wantGroup struct {
	channels int
	reason   string // why the group is pinned; "" for a prunable group
	blocks   int    // equal blocks a grouped conv imposes; 0 for none
	members  []string
}

// ruleCase is one op pattern: a hand-built graph, the groups its rules must find, and a cut
// (channels kept per group) with the shapes and node attributes the slim model must then have.
type ruleCase struct {
	name   string
	build  func(b *graphBuilder)
	groups []wantGroup
	keep   map[rewrite.GroupID][]int
	// shapes lists initializer dims or value shapes of the slim model by name.
	shapes map[string][]int64
	// attrs lists int or ints attributes of the slim model as "node.attr".
	attrs map[string][]int64
	// sliceErr, when set, is a fragment of the error Slice must return for keep.
	sliceErr string
}

const inputPinned = "graph input x is never resized"

func outputPinned(name string) string { return fmt.Sprintf("graph output %s is never resized", name) }

// ruleCases lists the patterns, at least one per op family. Graph input x and the outputs are
// always pinned; groups are listed in the order their first channels were made.
func ruleCases() []ruleCase {
	return []ruleCase{
		{
			name: "conv chain",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				r := b.op("Relu", "r", []string{b.conv("c1", x, 3, 8, 3, 1)})
				b.output(b.conv("c2", r, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 2, 5, 7}},
			shapes: map[string][]int64{"c1.w": {4, 3, 3, 3}, "c1.b": {4}, "r": {2, 4, 8, 8}, "c2.w": {4, 4, 3, 3}, "c2": {2, 4, 8, 8}},
		},
		{
			// A residual block: the block's last conv and the stem it adds back to must keep the
			// same channels, and a per-channel constant added to the sum is sliced with them.
			name: "residual add",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				a := b.op("Relu", "a", []string{b.conv("s", x, 3, 8, 3, 1)})
				rb := b.op("Relu", "rb", []string{b.conv("b1", a, 8, 8, 3, 1)})
				sum := b.op("Add", "sum", []string{b.conv("b2", rb, 8, 8, 3, 1), a})
				sb := b.op("Add", "sb", []string{sum, b.weight("shift", 1, 8, 1, 1)})
				b.output(b.conv("head", b.op("Relu", "r", []string{sb}), 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv s (in)"}},
				{8, "", 0, []string{"Conv s (out)", "Conv b1 (in)", "Conv b2 (out)", "Add sb (param)", "Conv head (in)"}},
				{8, "", 0, []string{"Conv b1 (out)", "Conv b2 (in)"}},
				{4, outputPinned("head"), 0, []string{"Conv head (out)"}},
			},
			keep: map[rewrite.GroupID][]int{1: {0, 1, 3, 6}, 2: {2, 4, 5}},
			shapes: map[string][]int64{"s.w": {4, 3, 3, 3}, "b1.w": {3, 4, 3, 3}, "b2.w": {4, 3, 3, 3},
				"shift": {1, 4, 1, 1}, "sum": {2, 4, 8, 8}, "head.w": {4, 4, 3, 3}},
		},
		{
			// Concat along channels: each input keeps its own group; the consumer reads both.
			name: "concat",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				cat := b.op("Concat", "cat", []string{b.conv("c1", x, 3, 4, 3, 1), b.conv("c2", x, 3, 6, 3, 1)}, integer("axis", 1))
				b.output(b.conv("c3", cat, 10, 5, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)", "Conv c2 (in)"}},
				{4, "", 0, []string{"Conv c1 (out)", "Conv c3 (in)"}},
				{6, "", 0, []string{"Conv c2 (out)", "Conv c3 (in)"}},
				{5, outputPinned("c3"), 0, []string{"Conv c3 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {1, 3}, 2: {0, 1, 5}},
			shapes: map[string][]int64{"c1.w": {2, 3, 3, 3}, "c2.w": {3, 3, 3, 3}, "cat": {2, 5, 8, 8}, "c3.w": {5, 5, 3, 3}},
		},
		{
			// A depthwise conv carries its input's channels: its filters and bias are sliced by
			// them and its group count follows the kept channels.
			name: "depthwise conv",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				dw := b.conv("dw", b.conv("c1", x, 3, 8, 3, 1), 8, 8, 3, 8)
				b.output(b.conv("c2", dw, 8, 4, 1, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Conv dw (depthwise)", "Conv dw (param)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 3, 4, 6, 7}},
			shapes: map[string][]int64{"dw.w": {5, 1, 3, 3}, "dw.b": {5}, "dw": {2, 5, 8, 8}, "c2.w": {4, 5, 1, 1}},
			attrs:  map[string][]int64{"dw.group": {5}},
		},
		{
			// A depthwise conv with a channel multiplier ties output c·m+k to input c: not mapped.
			name: "depthwise conv with multiplier",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				dw := b.conv("dw", b.conv("c1", x, 3, 4, 3, 1), 4, 8, 3, 4)
				b.output(b.conv("c2", dw, 8, 4, 1, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{4, "Conv dw is depthwise with channel multiplier 2", 0, []string{"Conv c1 (out)"}},
				{8, "Conv dw is depthwise with channel multiplier 2", 0, []string{"Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
		},
		{
			// A grouped conv (2 groups of 4 → 6 channels) splits its input and output channels into
			// two blocks each, which thin equally.
			name: "grouped conv",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				gc := b.conv("gc", b.conv("c1", x, 3, 8, 3, 1), 8, 12, 3, 2)
				b.output(b.conv("c2", gc, 12, 4, 1, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 2, []string{"Conv c1 (out)", "Conv gc (in)"}},
				{12, "", 2, []string{"Conv gc (out)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 2, 5, 7}, 2: {1, 2, 3, 4, 6, 7, 9, 11}},
			shapes: map[string][]int64{"c1.w": {4, 3, 3, 3}, "gc.w": {8, 2, 3, 3}, "gc.b": {8}, "c2.w": {4, 8, 1, 1}},
			attrs:  map[string][]int64{"gc.group": {2}},
		},
		{
			name: "grouped conv with unequal blocks",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				gc := b.conv("gc", b.conv("c1", x, 3, 8, 3, 1), 8, 12, 3, 2)
				b.output(b.conv("c2", gc, 12, 4, 1, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 2, []string{"Conv c1 (out)", "Conv gc (in)"}},
				{12, "", 2, []string{"Conv gc (out)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:     map[rewrite.GroupID][]int{1: {0, 1, 2, 4}},
			sliceErr: "group 1: grouped convolution needs the same number of channels in each of its 2 blocks, got [3 1]",
		},
		{
			// A block-diagonal grouped conv (4 groups of 2 → 2, RegNet's kind) carries its input's
			// channels like a depthwise conv: its blocks are kept or dropped whole, and its group
			// count follows the kept blocks.
			name:   "block-diagonal grouped conv",
			build:  buildBlockDiagonal,
			groups: blockDiagonalGroups,
			keep:   map[rewrite.GroupID][]int{1: {2, 3, 6, 7}},
			shapes: map[string][]int64{"c1.w": {4, 3, 3, 3}, "gc.w": {4, 2, 3, 3}, "gc.b": {4}, "gc": {2, 4, 8, 8}, "c2.w": {4, 4, 1, 1}},
			attrs:  map[string][]int64{"gc.group": {2}},
		},
		{
			name:     "block-diagonal grouped conv thinned",
			build:    buildBlockDiagonal,
			groups:   blockDiagonalGroups,
			keep:     map[rewrite.GroupID][]int{1: {0, 2, 4, 6}},
			sliceErr: "group 1: grouped convolution keeps or drops whole blocks of 2 channels, got [1 1 1 1]",
		},
		{
			// A Concat of 3 and 5 channels into a block-diagonal conv with blocks of 4: the
			// middle block holds channels of both groups, which would have to drop it together.
			name: "concat into block-diagonal conv",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				cat := b.op("Concat", "cat", []string{b.conv("c1", x, 3, 3, 3, 1), b.conv("c2", x, 3, 5, 3, 1)}, integer("axis", 1))
				b.output(b.conv("c3", b.conv("gc", cat, 8, 8, 3, 2), 8, 4, 1, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)", "Conv c2 (in)"}},
				{3, "grouped convolution Conv gc has blocks shared with other channel groups", 0, []string{"Conv c1 (out)", "Conv gc (grouped)", "Conv gc (param)", "Conv c3 (in)"}},
				{5, "grouped convolution Conv gc has blocks shared with other channel groups", 0, []string{"Conv c2 (out)", "Conv gc (grouped)", "Conv gc (param)", "Conv c3 (in)"}},
				{4, outputPinned("c3"), 0, []string{"Conv c3 (out)"}},
			},
		},
		{
			name: "batch norm between convs",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				bn := b.batchNorm("bn", b.conv("c1", x, 3, 8, 3, 1), 8)
				b.output(b.conv("c2", b.op("Relu", "r", []string{bn}), 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "BatchNormalization bn (param)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep: map[rewrite.GroupID][]int{1: {1, 2, 6}},
			shapes: map[string][]int64{"bn.gamma": {3}, "bn.beta": {3}, "bn.mean": {3}, "bn.var": {3}, "bn": {2, 3, 8, 8},
				"c2.w": {4, 3, 3, 3}},
		},
		{
			// Squeeze-and-excitation: the gate's last conv makes the channels the Mul scales, so it
			// joins the trunk's group; the bottleneck is a group of its own.
			name: "SE gate",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				r := b.op("Relu", "r", []string{b.conv("c1", x, 3, 8, 3, 1)})
				p := b.op("GlobalAveragePool", "p", []string{r})
				sr := b.op("Relu", "sr", []string{b.conv("s1", p, 8, 2, 1, 1)})
				sg := b.op("Sigmoid", "sg", []string{b.conv("s2", sr, 2, 8, 1, 1)})
				m := b.op("Mul", "m", []string{r, sg})
				b.output(b.conv("c2", m, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Conv s1 (in)", "Conv s2 (out)", "Conv c2 (in)"}},
				{2, "", 0, []string{"Conv s1 (out)", "Conv s2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 1, 4, 5, 7}, 2: {1}},
			shapes: map[string][]int64{"s1.w": {1, 5, 1, 1}, "s2.w": {5, 1, 1, 1}, "s2.b": {5}, "m": {2, 5, 8, 8}, "c2.w": {4, 5, 3, 3}},
		},
		{
			// Flatten → Gemm: channel c owns the Gemm's input columns c·64 … c·64+63.
			name: "flatten gemm",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				f := b.op("Flatten", "f", []string{b.op("Relu", "r", []string{b.conv("c1", x, 3, 4, 3, 1)})}, integer("axis", 1))
				b.output(b.op("Gemm", "fc", []string{f, b.weight("fc.w", 10, 256), b.weight("fc.b", 10)}, integer("transB", 1)))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{4, "", 0, []string{"Conv c1 (out)", "Gemm fc (in)"}},
				{10, outputPinned("fc"), 0, []string{"Gemm fc (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {1, 2}},
			shapes: map[string][]int64{"f": {2, 128}, "fc.w": {10, 128}, "fc.b": {10}},
		},
		{
			// A Reshape to features with a constant target: its feature dim is rewritten.
			name: "reshape gemm",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				f := b.op("Reshape", "f", []string{b.conv("c1", x, 3, 4, 3, 1)}, ints("shape", 2, 256))
				b.output(b.op("MatMul", "fc", []string{f, b.weight("fc.w", 256, 10)}))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{4, "", 0, []string{"Conv c1 (out)", "Reshape f (reshape)", "MatMul fc (in)"}},
				{10, outputPinned("fc"), 0, []string{"MatMul fc (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 3}},
			shapes: map[string][]int64{"f": {2, 128}, "fc.w": {128, 10}},
			attrs:  map[string][]int64{"f.shape": {2, 128}},
		},
		{
			// Global pooling then flatten: one column per channel (no flattened layout).
			name: "pooled head",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				p := b.op("GlobalAveragePool", "p", []string{b.conv("c1", x, 3, 4, 3, 1)})
				f := b.op("Flatten", "f", []string{p}, integer("axis", 1))
				b.output(b.op("Gemm", "fc", []string{f, b.weight("fc.w", 10, 4), b.weight("fc.b", 10)}, integer("transB", 1)))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{4, "", 0, []string{"Conv c1 (out)", "Gemm fc (in)"}},
				{10, outputPinned("fc"), 0, []string{"Gemm fc (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 3}},
			shapes: map[string][]int64{"f": {2, 2}, "fc.w": {10, 2}},
		},
		{
			// MatMul and Gemm chains: the hidden features are one group.
			name: "gemm matmul",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 16)
				h := b.op("Gemm", "fc1", []string{x, b.weight("fc1.w", 12, 16), b.weight("fc1.b", 12)}, integer("transB", 1))
				r := b.op("Relu", "r", []string{h})
				b.output(b.op("MatMul", "mm", []string{r, b.weight("mm.w", 12, 6)}))
			},
			groups: []wantGroup{
				{16, inputPinned, 0, []string{"Gemm fc1 (in)"}},
				{12, "", 0, []string{"Gemm fc1 (out)", "MatMul mm (in)"}},
				{6, outputPinned("mm"), 0, []string{"MatMul mm (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 2, 3, 4, 8, 9, 11}},
			shapes: map[string][]int64{"fc1.w": {7, 16}, "fc1.b": {7}, "r": {2, 7}, "mm.w": {7, 6}},
		},
		{
			// Split along channels: each output takes its run; the sizes follow the kept counts.
			name: "split",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				c1 := b.conv("c1", x, 3, 8, 3, 1)
				b.node("Split", []string{c1}, []string{"sa", "sb"}, integer("axis", 1), ints("split", 3, 5))
				ca, cb := b.conv("ca", "sa", 3, 4, 3, 1), b.conv("cb", "sb", 5, 4, 3, 1)
				b.output(b.op("Add", "sum", []string{ca, cb}))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Split sa (split)", "Conv ca (in)", "Conv cb (in)"}},
				{4, outputPinned("sum"), 0, []string{"Conv ca (out)", "Conv cb (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 2, 3, 4, 7}},
			shapes: map[string][]int64{"sa": {2, 2, 8, 8}, "sb": {2, 3, 8, 8}, "ca.w": {4, 2, 3, 3}, "cb.w": {4, 3, 3, 3}},
			attrs:  map[string][]int64{"sa.split": {2, 3}},
		},
		{
			// Slice of channels 2…5: its bounds move to the kept positions.
			name: "slice channels",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				sl := b.op("Slice", "sl", []string{b.conv("c1", x, 3, 8, 3, 1)}, ints("starts", 2), ints("ends", 6), ints("axes", 1))
				b.output(b.conv("c2", sl, 4, 3, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Slice sl (slice)", "Conv c2 (in)"}},
				{3, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {1, 3, 4, 6}},
			shapes: map[string][]int64{"c1.w": {4, 3, 3, 3}, "sl": {2, 2, 8, 8}, "c2.w": {3, 2, 3, 3}},
			attrs:  map[string][]int64{"sl.starts": {1}, "sl.ends": {3}},
		},
		{
			// A cut that keeps none of the channels a Slice takes is refused.
			name: "slice emptied by the cut",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				sl := b.op("Slice", "sl", []string{b.conv("c1", x, 3, 8, 3, 1)}, ints("starts", 2), ints("ends", 6), ints("axes", 1))
				b.output(b.conv("c2", sl, 4, 3, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Slice sl (slice)", "Conv c2 (in)"}},
				{3, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:     map[rewrite.GroupID][]int{1: {0, 1, 6}},
			sliceErr: "the cut keeps no channel of Slice sl",
		},
		{
			// Nor one that keeps none of a Split output's channels.
			name: "split output emptied by the cut",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				c1 := b.conv("c1", x, 3, 8, 3, 1)
				b.node("Split", []string{c1}, []string{"sa", "sb"}, integer("axis", 1), ints("split", 3, 5))
				ca, cb := b.conv("ca", "sa", 3, 4, 3, 1), b.conv("cb", "sb", 5, 4, 3, 1)
				b.output(b.op("Add", "sum", []string{ca, cb}))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Split sa (split)", "Conv ca (in)", "Conv cb (in)"}},
				{4, outputPinned("sum"), 0, []string{"Conv ca (out)", "Conv cb (out)"}},
			},
			keep:     map[rewrite.GroupID][]int{1: {3, 4, 7}},
			sliceErr: "the cut keeps no channel of output 0 of Split sa",
		},
		{
			// A Concat of 4 and 6 channels feeding a conv with 2 blocks of 5: c1's channels all
			// fall in the first block, c2's split 1|5. Keeping the same count per block within
			// each group cannot keep the conv's blocks equal, so both groups are pinned.
			name: "concat into grouped conv",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				cat := b.op("Concat", "cat", []string{b.conv("c1", x, 3, 4, 3, 1), b.conv("c2", x, 3, 6, 3, 1)}, integer("axis", 1))
				b.output(b.conv("gc", cat, 10, 4, 3, 2))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)", "Conv c2 (in)"}},
				{4, "grouped convolution Conv gc spreads these channels unevenly over its 2 blocks", 0, []string{"Conv c1 (out)", "Conv gc (in)"}},
				{6, "grouped convolution Conv gc spreads these channels unevenly over its 2 blocks", 0, []string{"Conv c2 (out)", "Conv gc (in)"}},
				{4, outputPinned("gc"), 2, []string{"Conv gc (out)"}},
			},
		},
		{
			// ShuffleNet's channel shuffle (Reshape → Transpose → Reshape) mixes channels across
			// the reshaped axes: both sides are pinned with the reason.
			name: "channel shuffle",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				r1 := b.op("Reshape", "r1", []string{b.conv("c1", x, 3, 8, 3, 1)}, ints("shape", 2, 2, 4, 8, 8))
				tr := b.op("Transpose", "tr", []string{r1}, ints("perm", 0, 2, 1, 3, 4))
				r2 := b.op("Reshape", "r2", []string{tr}, ints("shape", 2, 8, 8, 8))
				b.output(b.conv("c2", r2, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "channel shuffle or channel split at Reshape r1 is pinned", 0, []string{"Conv c1 (out)"}},
				{8, "Reshape r2 reshapes the channel axis", 0, []string{"Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
		},
		{
			// NCHW → NHWC → NCHW: the channels follow the permutation through both Transposes.
			name: "transpose round trip",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				t1 := b.op("Transpose", "t1", []string{b.conv("c1", x, 3, 8, 3, 1)}, ints("perm", 0, 2, 3, 1))
				t2 := b.op("Transpose", "t2", []string{b.op("Relu", "r", []string{t1})}, ints("perm", 0, 3, 1, 2))
				b.output(b.conv("c2", t2, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 5}},
			shapes: map[string][]int64{"t1": {2, 8, 8, 2}, "t2": {2, 2, 8, 8}, "c2.w": {4, 2, 3, 3}},
		},
		{
			// LRN mixes neighbouring channels and has no rule: its input and output are pinned.
			name: "opaque op",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				lrn := b.op("LRN", "lrn", []string{b.conv("c1", x, 3, 8, 3, 1)}, integer("size", 3))
				b.output(b.conv("c2", lrn, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "op LRN at node lrn is not known to chanopt's dependency rules", 0, []string{"Conv c1 (out)"}},
				{8, "op LRN at node lrn is not known to chanopt's dependency rules", 0, []string{"Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
		},
		{
			// ConvTranspose reads its input channels on weight axis 0 and makes its own on axis 1.
			name: "conv transpose",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				ct := b.op("ConvTranspose", "ct", []string{b.conv("c1", x, 3, 8, 3, 1), b.weight("ct.w", 8, 4, 2, 2), b.weight("ct.b", 4)},
					ints("kernel_shape", 2, 2), ints("strides", 2, 2))
				b.output(b.conv("c2", ct, 4, 3, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "ConvTranspose ct (in)"}},
				{4, "", 0, []string{"ConvTranspose ct (out)", "Conv c2 (in)"}},
				{3, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 1, 2, 3, 4}, 2: {1, 3}},
			shapes: map[string][]int64{"ct.w": {5, 2, 2, 2}, "ct.b": {2}, "ct": {2, 2, 16, 16}, "c2.w": {3, 2, 3, 3}},
		},
		{
			// Pad and ReduceMean over the spatial axes leave the channel axis where it is.
			name: "pad and reduce",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				p := b.op("Pad", "p", []string{b.conv("c1", x, 3, 8, 3, 1)}, ints("pads", 0, 0, 1, 1, 0, 0, 1, 1))
				r := b.op("ReduceMean", "rm", []string{p}, ints("axes", 2, 3), integer("keepdims", 0))
				b.output(b.op("Gemm", "fc", []string{r, b.weight("fc.w", 8, 5)}))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Gemm fc (in)"}},
				{5, outputPinned("fc"), 0, []string{"Gemm fc (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {2, 5}},
			shapes: map[string][]int64{"p": {2, 2, 10, 10}, "rm": {2, 2}, "fc.w": {2, 5}},
		},
		{
			// Softmax over the channels couples all of them: pinned.
			name: "softmax over channels",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				sm := b.op("Softmax", "sm", []string{b.conv("c1", x, 3, 8, 3, 1)}, integer("axis", 1))
				b.output(b.conv("c2", sm, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "Softmax sm normalises over the channel axis", 0, []string{"Conv c1 (out)"}},
				{8, "Softmax sm normalises over the channel axis", 0, []string{"Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
		},
		{
			// PRelu's per-channel slope is a parameter of the channels it gates.
			name: "prelu",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				pr := b.op("PRelu", "pr", []string{b.conv("c1", x, 3, 8, 3, 1), b.weight("slope", 8, 1, 1)})
				b.output(b.conv("c2", pr, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "PRelu pr (param)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 4, 7}},
			shapes: map[string][]int64{"slope": {3, 1, 1}, "pr": {2, 3, 8, 8}},
		},
		{
			// Resize of the spatial axes and an Unsqueeze/Squeeze pair move nothing.
			name: "resize and squeeze",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				rs := b.op("Resize", "rs", []string{b.conv("c1", x, 3, 8, 3, 1)}, floats("scales", 1, 1, 2, 2), text("mode", "nearest"))
				u := b.op("Unsqueeze", "u", []string{rs}, ints("axes", 0))
				sq := b.op("Squeeze", "sq", []string{u}, ints("axes", 0))
				b.output(b.conv("c2", sq, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {1, 2, 3, 6}},
			shapes: map[string][]int64{"rs": {2, 4, 16, 16}, "u": {1, 2, 4, 16, 16}, "c2.w": {4, 4, 3, 3}},
		},
		{
			// Concat along the batch axis: both inputs carry the same channels, so they are joined.
			name: "concat along batch",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				cat := b.op("Concat", "cat", []string{b.conv("c1", x, 3, 8, 3, 1), b.conv("c2", x, 3, 8, 3, 1)}, integer("axis", 0))
				b.output(b.conv("c3", cat, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)", "Conv c2 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Conv c2 (out)", "Conv c3 (in)"}},
				{4, outputPinned("c3"), 0, []string{"Conv c3 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 1, 2, 3, 5}},
			shapes: map[string][]int64{"cat": {4, 5, 8, 8}, "c1.w": {5, 3, 3, 3}, "c2.w": {5, 3, 3, 3}},
		},
		{
			// A per-channel divisor is sliced with the channels; masking must leave it alone (a
			// zero divisor would not silence a channel), which the exactness check would catch.
			name: "per-channel divisor",
			build: func(b *graphBuilder) {
				x := b.input("x", 2, 3, 8, 8)
				d := make([]float32, 8)
				for i := range d {
					d[i] = 0.5 + float32(i)/8
				}
				q := b.op("Div", "q", []string{b.conv("c1", x, 3, 8, 3, 1), b.constant("scale", []int64{1, 8, 1, 1}, d)})
				b.output(b.conv("c2", q, 8, 4, 3, 1))
			},
			groups: []wantGroup{
				{3, inputPinned, 0, []string{"Conv c1 (in)"}},
				{8, "", 0, []string{"Conv c1 (out)", "Div q (param)", "Conv c2 (in)"}},
				{4, outputPinned("c2"), 0, []string{"Conv c2 (out)"}},
			},
			keep:   map[rewrite.GroupID][]int{1: {0, 1, 6}},
			shapes: map[string][]int64{"scale": {1, 3, 1, 1}, "q": {2, 3, 8, 8}},
		},
	}
}

// TestRules checks each op family's coupling rule on a hand-built graph: the groups (channels,
// pinned or not and why, blocks, members), then the slim model's shapes and attributes at a cut,
// and that the engine computes the same on the slim model as on the original with the dropped
// channels masked. Every pinned group must refuse to shrink.
func TestRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := newGraph(uint64(len(tc.name)))
			tc.build(b)
			m := b.model()
			a, err := rewrite.Groups(m)
			if err != nil {
				t.Fatal(err)
			}
			checkGroups(t, a.Groups, tc.groups)
			for _, g := range a.Groups {
				if g.Prunable {
					continue
				}
				_, err := a.Slice(rewrite.Keep{g.ID: {0}})
				if err == nil || !strings.Contains(err.Error(), g.Reason) {
					t.Errorf("cutting pinned group %d: error %v, want one naming %q", g.ID, err, g.Reason)
				}
			}
			if tc.keep == nil {
				return
			}
			keep := rewrite.Keep(tc.keep)
			slim, err := a.Slice(keep)
			if tc.sliceErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.sliceErr) {
					t.Fatalf("Slice error %v, want %q", err, tc.sliceErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkSlim(t, slim, tc.shapes, tc.attrs)
			masked, err := a.Mask(keep)
			if err != nil {
				t.Fatal(err)
			}
			checkSameOutputs(t, masked, slim, rand.New(rand.NewPCG(7, uint64(len(tc.name)))))
		})
	}
}

func checkGroups(t *testing.T, got []*rewrite.Group, want []wantGroup) {
	t.Helper()
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("group %d: %d channels, prunable %v (%s), blocks %d, members %q", g.ID, g.Channels, g.Prunable, g.Reason, g.Blocks, g.Members)
		}
		t.Fatalf("%d groups, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Channels != w.channels || g.Prunable != (w.reason == "") || g.Reason != w.reason || g.Blocks != w.blocks ||
			!reflect.DeepEqual(g.Members, w.members) {
			t.Errorf("group %d: %d channels, prunable %v (%q), blocks %d, members %q\nwant %d channels, reason %q, blocks %d, members %q",
				i, g.Channels, g.Prunable, g.Reason, g.Blocks, g.Members, w.channels, w.reason, w.blocks, w.members)
		}
	}
}

func checkSlim(t *testing.T, slim *onnx.Model, shapes map[string][]int64, attrs map[string][]int64) {
	t.Helper()
	g := slim.Graph
	for name, want := range shapes {
		var got []int64
		if init, ok := g.Inits[name]; ok {
			got = init.Dims
		} else if v, ok := g.Values[name]; ok {
			got = v.Shape.Sizes()
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("slim %s has shape %v, want %v", name, got, want)
		}
	}
	byName := map[string]*onnx.Node{}
	for _, n := range g.Nodes {
		byName[n.Name] = n
	}
	for key, want := range attrs {
		node, attr, _ := strings.Cut(key, ".")
		n := byName[node]
		if n == nil {
			t.Errorf("slim model has no node %s", node)
			continue
		}
		var got []int64
		if at := n.Attrs[attr]; at != nil && at.Kind == onnx.AttrInt {
			got = []int64{at.I}
		} else {
			got = n.Ints(attr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("slim %s is %v, want %v", key, got, want)
		}
	}
}

// checkSameOutputs runs both models in the engine on one random input and wants the same outputs.
func checkSameOutputs(t *testing.T, want, got *onnx.Model, rng *rand.Rand) {
	t.Helper()
	in := want.Graph.Values[want.Graph.Inputs[0]].Shape.Sizes()
	shape := make([]int, len(in))
	n := 1
	for i, d := range in {
		shape[i] = int(d)
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	run := func(m *onnx.Model) []*engine.Tensor {
		p, err := engine.Compile(m, engine.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		out, err := p.RunSlice(engine.NewTensor(shape, data))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	w, g := run(want), run(got)
	for i := range w {
		if !reflect.DeepEqual(w[i].Shape, g[i].Shape) {
			t.Fatalf("output %d: slim shape %v, masked %v", i, g[i].Shape, w[i].Shape)
		}
		scale, diff := 0.0, 0.0
		for j, v := range w[i].Data {
			d := math.Abs(float64(v - g[i].Data[j]))
			if math.IsNaN(d) || math.IsInf(d, 0) {
				t.Fatalf("output %d at %d: masked %g, slim %g", i, j, v, g[i].Data[j])
			}
			scale = math.Max(scale, math.Abs(float64(v)))
			diff = math.Max(diff, d)
		}
		if diff > 1e-5*math.Max(scale, 1) {
			t.Errorf("output %d: slim differs from masked by %.3g (max |output| %.3g)", i, diff, scale)
		}
	}
}

// TestMaskSilencesChannels checks what Mask zeroes for a BN: the scale and shift of the dropped
// channels (which silences them) but never the running mean or variance, and nothing of the kept
// channels.
func TestMaskSilencesChannels(t *testing.T) {
	b := newGraph(3)
	x := b.input("x", 2, 3, 8, 8)
	bn := b.batchNorm("bn", b.conv("c1", x, 3, 8, 3, 1), 8)
	b.output(b.conv("c2", bn, 8, 4, 3, 1))
	m := b.model()
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	kept := []int{1, 2, 6}
	masked, err := a.Mask(rewrite.Keep{1: kept})
	if err != nil {
		t.Fatal(err)
	}
	var node *onnx.Node
	for _, n := range masked.Graph.Nodes {
		if n.Name == "bn" {
			node = n
		}
	}
	isKept := map[int]bool{}
	for _, c := range kept {
		isKept[c] = true
	}
	for i, param := range []string{"bn.gamma", "bn.beta", "bn.mean", "bn.var"} {
		orig := m.Graph.Inits[param].Floats
		got := masked.Graph.Inits[node.Inputs[i+1]].Floats
		silenced := i < 2
		for c := range orig {
			want := orig[c]
			if silenced && !isKept[c] {
				want = 0
			}
			if got[c] != want {
				t.Errorf("masked %s[%d] = %g, want %g", param, c, got[c], want)
			}
		}
	}
}

// TestMalformedParameters: a per-channel parameter of the wrong length is an error naming the node
// and the tensor, not a panic when Slice or Mask runs off its end.
func TestMalformedParameters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *graphBuilder, c1 string)
		want  string
	}{
		{"BN scale", func(b *graphBuilder, c1 string) {
			b.output(b.op("BatchNormalization", "bn", []string{c1, b.weight("g", 5), b.weight("bb", 8), b.weight("m", 8), b.weight("v", 8)}))
		}, "node bn (BatchNormalization): input 1 (g) has shape [5], want 8 entries along axis 0"},
		{"conv bias", func(b *graphBuilder, c1 string) {
			b.output(b.op("Conv", "c2", []string{c1, b.weight("c2.w", 4, 8, 1, 1), b.weight("c2.b", 3)}))
		}, "node c2 (Conv): input 2 (c2.b) has shape [3], want 4 entries along axis 0"},
		{"depthwise bias", func(b *graphBuilder, c1 string) {
			b.output(b.op("Conv", "dw", []string{c1, b.weight("dw.w", 8, 1, 3, 3), b.weight("dw.b", 3)}, integer("group", 8), ints("pads", 1, 1, 1, 1)))
		}, "node dw (Conv): input 2 (dw.b) has shape [3], want 8 entries along axis 0"},
		{"conv transpose bias", func(b *graphBuilder, c1 string) {
			b.output(b.op("ConvTranspose", "ct", []string{c1, b.weight("ct.w", 8, 4, 2, 2), b.weight("ct.b", 2)}, ints("strides", 2, 2)))
		}, "node ct (ConvTranspose): input 2 (ct.b) has shape [2], want 4 entries along axis 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newGraph(1)
			tc.build(b, b.conv("c1", b.input("x", 2, 3, 8, 8), 3, 8, 3, 1))
			_, err := rewrite.Groups(b.model())
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

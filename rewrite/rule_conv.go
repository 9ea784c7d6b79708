package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// conv is the rule of Conv. A plain conv reads its input channels through axis 1 of its weight and
// makes a new space of output channels (axis 0 of the weight and the bias). A block-diagonal conv,
// one whose groups each read and write as many channels (a depthwise conv: one each; RegNet's and
// ResNeXt's grouped convs: 8 or 4 each), makes no space: output channel c is made from the block
// of input channels c is in, so it carries the input's channels, slices its filters and bias by
// them and drops whole blocks, its group count following the kept blocks. Dropping blocks keeps
// the runtime's per-group work as it is (ONNX Runtime runs a grouped conv group by group, so
// thinning every group leaves the time nearly unchanged; measured on regnet_y_400mf). Another
// grouped conv splits its input and output channels into blocks that must keep equal counts; a
// depthwise conv with a channel multiplier is opaque.
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
	case BlockDiagonal(group, cin, cout) && cinPerGroup*group == cin:
		// block-diagonal (depthwise when cinPerGroup is 1): output channel c reads the input
		// block c is in
		role := "depthwise"
		if cinPerGroup > 1 {
			role = "grouped"
			a.wholeBlocks(lx.refs, group, label(n))
		}
		a.add(action{kind: sliceAxis, node: n, role: role, tensor: w, input: 1, axis: 0, refs: lx.refs, masks: true, groups: group})
		if err := a.checkLen(n, 2, 0, cin); err != nil {
			return err
		}
		if bias != "" {
			a.add(action{kind: sliceAxis, node: n, role: "param", tensor: bias, input: 2, axis: 0, refs: lx.refs, masks: true})
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
	if err := a.checkLen(n, 2, 0, cout); err != nil {
		return err
	}
	out := a.newSpace(cout, label(n))
	if group > 1 {
		a.block(out, group, label(n))
	}
	a.add(action{kind: sliceAxis, node: n, role: "out", tensor: w, input: 1, axis: 0, refs: out, masks: true})
	if bias != "" {
		a.add(action{kind: sliceAxis, node: n, role: "out", tensor: bias, input: 2, axis: 0, refs: out, masks: true})
	}
	a.setOut(n, 0, &layout{axis: 1, refs: out})
	return nil
}

// block records that refs split into `blocks` equal blocks that must shrink equally.
func (a *Analysis) block(refs []int, blocks int, by string) { a.tagBlocks(refs, blocks, by, false) }

// wholeBlocks records that refs split into `blocks` equal blocks that are kept or dropped whole.
func (a *Analysis) wholeBlocks(refs []int, blocks int, by string) {
	a.tagBlocks(refs, blocks, by, true)
}

func (a *Analysis) tagBlocks(refs []int, blocks int, by string, whole bool) {
	per := len(refs) / blocks
	for i, e := range refs {
		a.blockTags = append(a.blockTags, blockNote{elem: e, tag: blockTag{blocks: blocks, block: i / per, size: per, by: by, whole: whole}})
	}
}

// convTranspose is the rule of ConvTranspose: its weight is C_in × C_out/group × k…, so it reads
// its input channels through axis 0 and makes its output channels along axis 1. Grouped ones are
// opaque.
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
	if err := a.checkLen(n, 1, 0, len(lx.refs)); err != nil {
		return err
	}
	if err := a.checkLen(n, 2, 0, int(wt.Dims[1])); err != nil {
		return err
	}
	a.add(action{kind: sliceAxis, node: n, role: "in", tensor: w, input: 1, axis: 0, refs: lx.refs})
	out := a.newSpace(int(wt.Dims[1]), label(n))
	a.add(action{kind: sliceAxis, node: n, role: "out", tensor: w, input: 1, axis: 1, refs: out, masks: true})
	if bias != "" {
		a.add(action{kind: sliceAxis, node: n, role: "out", tensor: bias, input: 2, axis: 0, refs: out, masks: true})
	}
	a.setOut(n, 0, &layout{axis: 1, refs: out})
	return nil
}

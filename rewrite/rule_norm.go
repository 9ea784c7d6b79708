package rewrite

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// norm is the rule of BatchNormalization and InstanceNormalization: the output carries the input's
// channels, and every per-channel parameter is sliced by them. Zeroing the scale and shift silences
// a channel; zeroing a BN mean or variance does not (Mask leaves those). A training-mode BN's
// running-statistics outputs carry the channels along axis 0.
func (a *Analysis) norm(n *onnx.Node) error {
	l := a.get(n.Input(0), fmt.Sprintf("input of %s", label(n)))
	if l == nil || l.axis != 1 || l.flat != nil {
		a.opaque(n, fmt.Sprintf("%s normalises an axis chanopt cannot map", label(n)))
		return nil
	}
	for i := 1; i < len(n.Inputs); i++ {
		if a.isConst(n.Inputs[i]) {
			if err := a.checkLen(n, i, 0, len(l.refs)); err != nil {
				return err
			}
			scaleOrShift := i <= 2
			a.add(action{kind: sliceAxis, node: n, role: "param", tensor: n.Inputs[i], input: i, axis: 0, refs: l.refs, masks: scaleOrShift})
		} else {
			a.pin(l.refs, fmt.Sprintf("%s has a computed parameter", label(n)))
		}
	}
	a.setOut(n, 0, l)
	for i := 1; i < len(n.Outputs); i++ {
		a.setOut(n, i, &layout{axis: 0, refs: l.refs})
	}
	return nil
}

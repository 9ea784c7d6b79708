package main

import (
	"fmt"
	"strings"

	"github.com/chanopt/chanopt/optimizer"
)

// singleClassifier reports whether an agreement is that of a model with one classifier output,
// whose figures print as they always have (top-1 agreement and KL).
func singleClassifier(a optimizer.Agreement) bool {
	return len(a.Outputs) == 0 || (len(a.Outputs) == 1 && a.Outputs[0].Top1 != nil)
}

// outputFigures says how one output agrees with the original's, in the figures of its kind:
// "mask (map): IoU 99.12%, MAE 0.0031".
func outputFigures(o optimizer.OutputAgreement) string {
	var f []string
	if o.Top1 != nil {
		f = append(f, fmt.Sprintf("top-1 agreement %.2f%%", 100**o.Top1))
	}
	if o.IoU != nil {
		f = append(f, fmt.Sprintf("IoU %.2f%%", 100**o.IoU))
	}
	if o.MAE != nil {
		f = append(f, fmt.Sprintf("MAE %.4f", *o.MAE))
	}
	if o.Cosine != nil {
		f = append(f, fmt.Sprintf("cosine %.4f", *o.Cosine))
	}
	f = append(f, fmt.Sprintf("divergence %.4f", o.Divergence))
	return fmt.Sprintf("%s (%s): %s", o.Name, o.Kind, strings.Join(f, ", "))
}

// figureName names an output's main agreement figure for a table row.
func figureName(o optimizer.OutputAgreement) string {
	switch {
	case o.Top1 != nil:
		return "agreement"
	case o.IoU != nil:
		return "IoU"
	case o.Cosine != nil:
		return "cosine"
	}
	return "figure"
}

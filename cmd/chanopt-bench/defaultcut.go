package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// defaultCutRatios are the MACs ratios the data-free default cut is chosen among.
var defaultCutRatios = []float64{0.97, 0.95, 0.9, 0.85}

// benchDefaultCut measures what `chanopt shrink MODEL` with no budget and no data may cut: every
// bundled model at each of defaultCutRatios through the data-free path it takes (the data-free
// contribution search, the removed channels' means compensated), accuracy in ONNX Runtime on the
// 10k test set. The default (optimizer.DataFreeCut) is the largest cut whose worst drop stays
// within about a point.
func benchDefaultCut(env *benchEnv) error {
	test, err := dataset.Load(fashionTest, fashionTestLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		return err
	}
	opt := optimizer.DefaultOptions()
	opt.Repair = optimizer.RepairCompensate
	opt.Runtime, _ = optimizer.DefaultRuntime("", 0) // as the CLI: ONNX Runtime's grids when it is found
	dir, err := os.MkdirTemp("", "chanopt-defaultcut")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("   no data, mean compensation; ONNX Runtime accuracy on the 10k test set (drop in points); default cut: --macs %g\n", optimizer.DataFreeCut)
	head := "   | model | original |"
	rule := "   |---|---|"
	for _, r := range defaultCutRatios {
		head += fmt.Sprintf(" --macs %g |", r)
		rule += "---|"
	}
	fmt.Println(head)
	fmt.Println(rule)
	worst := make([]float64, len(defaultCutRatios))
	for _, p := range bundledModels(env) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		m, err := onnx.Load(p)
		if err != nil {
			return err
		}
		base, _, err := ortEval(p, test)
		if err != nil {
			return err
		}
		row := fmt.Sprintf("   | %s | %.2f%% |", name, 100*base)
		for i, r := range defaultCutRatios {
			o := opt
			o.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: r}
			res, err := optimizer.Shrink(context.Background(), m, o)
			if err != nil {
				return fmt.Errorf("%s at %g: %w", name, r, err)
			}
			out := filepath.Join(dir, fmt.Sprintf("%s.%g.onnx", name, r))
			if err := onnx.Save(out, res.Model, onnx.WriteOptions{}); err != nil {
				return err
			}
			acc, _, err := ortEval(out, test)
			if err != nil {
				return err
			}
			drop := 100 * (base - acc)
			worst[i] = max(worst[i], drop)
			row += fmt.Sprintf(" %.2f%% (%+.2f, MACs %.3f) |", 100*acc, -drop, float64(res.Report.After.MACs)/float64(res.Report.Before.MACs))
		}
		fmt.Println(row)
	}
	row := "   | worst drop | |"
	for _, w := range worst {
		row += fmt.Sprintf(" %.2f |", w)
	}
	fmt.Println(row)
	return nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// benchDataFree: `chanopt shrink MODEL --macs 0.5` without --data on every bundled model, stage by
// stage, in ONNX Runtime on the 10k test set: the slice alone (optimizer.RepairNone), with the mean
// compensation estimated from the model (RepairCompensate, what --no-distill writes), and repaired
// on images synthesised from the original (what the command writes without --no-distill). All
// three are optimizer.Shrink with the CLI's defaults; the data-free search is deterministic, so
// they cut the same channels.
func benchDataFree(env *benchEnv) error {
	test, err := dataset.Load(fashionTest, fashionTestLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		return err
	}
	opt := optimizer.DefaultOptions()
	opt.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
	opt.Runtime, _ = optimizer.DefaultRuntime("", 0) // as the CLI: ONNX Runtime's grids when it is found
	fmt.Println("   `chanopt shrink MODEL --macs 0.5`, no data: widths and channels by the data-free contribution search;")
	fmt.Printf("   repair on %d images synthesised from the original, up to %g epochs of KD; ONNX Runtime on the 10k test set\n", opt.Synthetic, opt.Epochs)
	fmt.Println("   | model | original | slice, no repair | + mean compensation (--no-distill) | + synthetic-data repair | time |")
	fmt.Println("   |---|---|---|---|---|---|")
	dir, err := os.MkdirTemp("", "chanopt-datafree")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	accOf := func(m *onnx.Model, name string) (float64, error) {
		p := filepath.Join(dir, name+".onnx")
		if err := onnx.Save(p, m, onnx.WriteOptions{}); err != nil {
			return 0, err
		}
		acc, _, err := ortEval(p, test)
		return acc, err
	}
	for _, p := range bundledModels(env) {
		start := time.Now()
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		m, err := onnx.Load(p)
		if err != nil {
			return err
		}
		models := []*onnx.Model{m}
		for _, r := range []optimizer.Repair{optimizer.RepairNone, optimizer.RepairCompensate, optimizer.RepairDistill} {
			o := opt
			o.Repair = r
			res, err := optimizer.Shrink(context.Background(), m, o)
			if err != nil {
				return fmt.Errorf("%s (%s): %w", name, r, err)
			}
			models = append(models, res.Model)
		}
		elapsed := time.Since(start)
		var acc [4]float64
		for i, mm := range models {
			if acc[i], err = accOf(mm, fmt.Sprintf("%s.%d", name, i)); err != nil {
				return err
			}
		}
		fmt.Printf("   | %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %s |\n", name, 100*acc[0], 100*acc[1], 100*acc[2], 100*acc[3],
			elapsed.Round(time.Second))
	}
	return nil
}

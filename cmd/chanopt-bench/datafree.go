package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// benchDataFree: `chanopt shrink MODEL --macs 0.5` without --data on every bundled model, stage by
// stage, in ONNX Runtime on the 10k test set: the slice alone (no repair at all), with the mean
// compensation estimated from the model (what --no-distill writes), and repaired on images
// synthesised from the original (what the command writes without --no-distill).
func benchDataFree(env *benchEnv) error {
	test, err := dataset.Load(fashionTest, fashionTestLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		return err
	}
	fmt.Println("   --macs 0.5, no data: widths and channels by the data-free contribution search (seed 1);")
	fmt.Println("   repair on 512 images synthesised from the original, 8 epochs of KD; ONNX Runtime on the 10k test set")
	fmt.Println("   | model | original | slice, no repair | + mean compensation (--no-distill) | + synthetic-data repair | time |")
	fmt.Println("   |---|---|---|---|---|---|")
	paths := bundledModels(env)
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
	for _, p := range paths {
		start := time.Now()
		name, m, shapes, a, err := loadGrouped(p)
		if err != nil {
			return err
		}
		layers, err := optimizer.LayerMetricsOf(m)
		if err != nil {
			return err
		}
		est := optimizer.EstimateMoments(m, optimizer.MomentOptions{})
		imp := optimizer.ContributionImportance(a, est, optimizer.MomentOptions{})
		sr, err := optimizer.Anneal(a, optimizer.SearchOptions{Budget: optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5},
			Inputs: shapes, Seed: 1, Iterations: 4000, Layers: layers, Importance: imp,
			Fitness: optimizer.ContributionFitness(a, est, optimizer.MomentOptions{})})
		if err != nil {
			return err
		}
		corr, err := a.Correspond(sr.Keep)
		if err != nil {
			return err
		}
		sliced := sr.Model.Clone()
		if _, err := optimizer.Compensate(m, sr.Model, corr, est); err != nil {
			return err
		}
		compensated := sr.Model.Clone()
		in := shapes[m.Graph.Inputs[0]]
		synth, err := optimizer.Synthesize(m, int(in[1].Size), int(in[2].Size), int(in[3].Size), optimizer.SynthesizeOptions{Images: 512, Seed: 1})
		if err != nil {
			return err
		}
		scal, sval := synth.Split(0.2, 1)
		if _, err := optimizer.Distill(m, sr.Model, corr, scal, sval, optimizer.DistillOptions{Batch: 64, Epochs: 8, LR: 1e-3, Seed: 1,
			MaxTime: 5 * time.Minute}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		elapsed := time.Since(start)
		var acc [4]float64
		for i, mm := range []*onnx.Model{m, sliced, compensated, sr.Model} {
			if acc[i], err = accOf(mm, fmt.Sprintf("%s.%d", name, i)); err != nil {
				return err
			}
		}
		fmt.Printf("   | %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %s |\n", name, 100*acc[0], 100*acc[1], 100*acc[2], 100*acc[3],
			elapsed.Round(time.Second))
	}
	return nil
}

package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/chanopt/chanopt/internal/dataset"
	"github.com/chanopt/chanopt/optimizer"
)

// benchSearch: the annealer against the uniform split and random widths at the same MACs budget,
// each repaired the same way (BN recalibration or bias correction, then the least-squares refit),
// judged by top-1 agreement with the original on held-back calibration images.
func benchSearch(env *benchEnv) error {
	paths := bundledModels(env)
	calibPath := filepath.Join(env.models, "data", "calib-images-idx3-ubyte.gz")
	all, err := dataset.Load(calibPath, "", dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: 1200})
	if err != nil {
		return err
	}
	calib, val := all.Split(0.25, 1)
	fmt.Printf("   budget --macs 0.5; %d calibration images, %d held back; agreement after the same repair\n", calib.N, val.N)
	fmt.Printf("   %-16s %9s %9s %9s  %s\n", "model", "anneal", "uniform", "random", "anneal search time")
	for _, p := range paths {
		name, m, shapes, a, err := loadGrouped(p)
		if err != nil {
			return err
		}
		budget := optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
		judge := func(res *optimizer.Result) (float64, error) {
			corr, err := a.Correspond(res.Keep)
			if err != nil {
				return 0, err
			}
			rep, err := optimizer.Distill(m, res.Model, corr, calib, val, optimizer.DistillOptions{Batch: 100})
			if err != nil {
				return 0, err
			}
			last := rep.Stages[0].Agreement
			for _, s := range rep.Stages {
				if s.Kept {
					last = s.Agreement
				}
			}
			return last.Top1, nil
		}
		t0 := time.Now()
		fit, err := optimizer.NewDataFitness(a, calib.Head(256), 64, 0)
		if err != nil {
			return err
		}
		an, err := optimizer.Anneal(a, optimizer.SearchOptions{Budget: budget, Inputs: shapes, Seed: 1, Iterations: 60, Fitness: fit.Score})
		if err != nil {
			return err
		}
		searchTime := time.Since(t0)
		un, err := optimizer.ShrinkUniform(a, budget, shapes, 1)
		if err != nil {
			return err
		}
		rnd, err := optimizer.Anneal(a, optimizer.SearchOptions{Budget: budget, Inputs: shapes, Seed: 7, Iterations: 300, Random: true})
		if err != nil {
			return err
		}
		var got [3]float64
		for i, r := range []*optimizer.Result{&an.Result, un, &rnd.Result} {
			if got[i], err = judge(r); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		fmt.Printf("   %-16s %8.1f%% %8.1f%% %8.1f%%  %s (MACs kept %.3f / %.3f / %.3f)\n", name, 100*got[0], 100*got[1], 100*got[2],
			searchTime.Round(time.Second), float64(an.Costs.MACs)/an.Base, float64(un.Costs.MACs)/an.Base, float64(rnd.Costs.MACs)/an.Base)
	}
	return nil
}

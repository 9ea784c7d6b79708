package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/optimizer"
)

// benchSearch: the annealer against the uniform split and random widths at the same MACs budget,
// each repaired the same way (BN recalibration or bias correction, then the least-squares refit),
// judged by top-1 agreement (and KL) with the original on held-back calibration images.
func benchSearch(env *benchEnv) error {
	paths := bundledModels(env)
	// Two students a point apart in agreement disagree on a few percent of images, so on 2,000
	// held-back images the difference between them has a standard error near half a point, as
	// large as the differences measured. Debian's Fashion-MNIST training set, where installed,
	// gives 4,000 calibration images and 10,000 held back (error near 0.2 points).
	src, samples, heldOut := fashionTrain, 14000, 5.0/7
	if _, err := os.Stat(src); err != nil {
		src, samples, heldOut = filepath.Join(env.models, "data", "calib-images-idx3-ubyte.gz"), 0, 0.4
	}
	all, err := dataset.Load(src, "", dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: samples})
	if err != nil {
		return err
	}
	calib, val := all.Split(heldOut, 1)
	fmt.Printf("   budget --macs 0.5; %d calibration images, %d held back (%s); agreement after the same repair\n", calib.N, val.N, filepath.Base(src))
	fmt.Printf("   %-16s %16s %16s %16s  %s\n", "model", "anneal", "uniform", "random", "anneal search")
	for _, p := range paths {
		name, m, shapes, a, err := loadGrouped(p)
		if err != nil {
			return err
		}
		budget := optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
		judge := func(res *optimizer.Slim) (optimizer.Agreement, error) {
			corr, err := a.Correspond(res.Keep)
			if err != nil {
				return optimizer.Agreement{}, err
			}
			rep, err := optimizer.Distill(m, res.Model, corr, calib, val, optimizer.DistillOptions{Batch: 100})
			if err != nil {
				return optimizer.Agreement{}, err
			}
			return rep.Final(), nil
		}
		t0 := time.Now()
		// As `chanopt shrink --data` searches by default: 150 proposals, at most 2 minutes.
		sopt := optimizer.SearchOptions{Budget: budget, Inputs: shapes, Seed: 1, Iterations: 150, TimeLimit: 2 * time.Minute}
		if _, err := sopt.UseData(a, calib, 64, 0); err != nil {
			return err
		}
		an, err := optimizer.Anneal(a, sopt)
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
		var got [3]string
		for i, r := range []*optimizer.Slim{&an.Slim, un, &rnd.Slim} {
			ag, err := judge(r)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			got[i] = fmt.Sprintf("%.2f%% (%.4f)", 100*ag.Top1, ag.KL)
		}
		fin := ""
		if c := an.Confirmation; c != nil {
			fin = fmt.Sprintf(", finalists %d, start chosen: %v", c.Finalists, c.ChoseStart)
		}
		fmt.Printf("   %-16s %16s %16s %16s  %s (MACs kept %.3f / %.3f / %.3f%s)\n", name, got[0], got[1], got[2],
			searchTime.Round(time.Second), float64(an.Costs.MACs)/an.Base, float64(un.Costs.MACs)/an.Base, float64(rnd.Costs.MACs)/an.Base, fin)
	}
	return nil
}

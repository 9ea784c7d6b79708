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

// benchTarget runs `chanopt shrink MODEL --data <training images>` with no budget on the bundled
// models (CHANOPT_BENCH_MODELS picks some; CHANOPT_BENCH_SAMPLES and CHANOPT_BENCH_TIME shorten
// it; CHANOPT_BENCH_LABELS=1 adds the training labels, so the figure is accuracy): the MACs ratio the accuracy-first search reached within the default --max-drop of held-back agreement,
// every budget tried, and the accuracy drop in ONNX Runtime on the 10k test set.
func benchTarget(env *benchEnv) error {
	samples := 60000
	if v := os.Getenv("CHANOPT_BENCH_SAMPLES"); v != "" {
		fmt.Sscan(v, &samples)
	}
	opt := optimizer.DefaultOptions()
	if v := os.Getenv("CHANOPT_BENCH_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CHANOPT_BENCH_TIME: %w", err)
		}
		opt.Time = d
	}
	test, err := dataset.Load(fashionTest, fashionTestLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		return err
	}
	labels, figure := "", "agreement"
	if os.Getenv("CHANOPT_BENCH_LABELS") != "" {
		// With the training labels the held-back figure is accuracy instead of agreement.
		labels, figure = fashionTrain[:len(fashionTrain)-len("images-idx3-ubyte.gz")]+"labels-idx1-ubyte.gz", "accuracy"
	}
	all, err := dataset.Load(fashionTrain, labels, dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: samples})
	if err != nil {
		return err
	}
	opt.Runtime, _ = optimizer.DefaultRuntime("", 0) // as the CLI: ONNX Runtime's grids when it is found
	opt.Data = all
	fmt.Printf("   `chanopt shrink MODEL --data <%d training images> --time %s` (no budget: max drop %g points of held-back %s); ONNX Runtime on the 10k test set\n",
		all.N, opt.Time, optimizer.DefaultMaxDrop, figure)
	fmt.Printf("   | model | MACs ratio reached | held-back %s | accuracy, 10k test | trials (ratio: drop) | time |\n", figure)
	fmt.Println("   |---|---|---|---|---|---|")
	dir, err := os.MkdirTemp("", "chanopt-target")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, p := range bundledModels(env) {
		start := time.Now()
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		m, err := onnx.Load(p)
		if err != nil {
			return err
		}
		res, err := optimizer.Shrink(context.Background(), m, opt)
		if err != nil {
			fmt.Printf("   | %s | failed: %v | | | | %s |\n", name, err, time.Since(start).Round(time.Second))
			continue
		}
		elapsed := time.Since(start)
		out := filepath.Join(dir, name+".slim.onnx")
		if err := onnx.Save(out, res.Model, onnx.WriteOptions{}); err != nil {
			return err
		}
		accB, _, err := ortEval(p, test)
		if err != nil {
			return err
		}
		accA, _, err := ortEval(out, test)
		if err != nil {
			return err
		}
		tg := res.Report.Target
		var trials []string
		var kept optimizer.TargetTrial
		for _, t := range tg.Trials {
			if t.Error != "" {
				trials = append(trials, fmt.Sprintf("%.3g: failed", t.Ratio))
				continue
			}
			trials = append(trials, fmt.Sprintf("%.3g: %.2f", t.Ratio, t.Drop))
			if t.Ratio == tg.Ratio {
				kept = t
			}
		}
		fmt.Printf("   | %s | %.3f | %.2f%% (drop %.2f) | %.2f%% → %.2f%% (%+.2f) | %s | %s |\n", name,
			float64(res.Report.After.MACs)/float64(res.Report.Before.MACs), kept.Figure, kept.Drop,
			100*accB, 100*accA, 100*(accA-accB), strings.Join(trials, ", "), elapsed.Round(time.Second))
	}
	return nil
}

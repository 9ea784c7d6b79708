package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/ort"
)

// benchTarget runs `chanopt shrink MODEL --data <training images>` with no budget on the bundled
// models (CHANOPT_BENCH_MODELS picks some; CHANOPT_BENCH_SAMPLES and CHANOPT_BENCH_TIME shorten
// it; CHANOPT_BENCH_LABELS=1 adds the training labels, so the figure is accuracy): the MACs ratio
// the accuracy-first search reached within the default --max-drop of the held-back figure (without
// labels, accuracy estimated from the original's probabilities), every budget tried, and the
// accuracy drop in ONNX Runtime on the 10k test set. CHANOPT_BENCH_RATIOS (comma-separated MACs
// ratios) instead checks that estimate at fixed budgets: see checkEstimate.
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
	trainLabels := fashionTrain[:len(fashionTrain)-len("images-idx3-ubyte.gz")] + "labels-idx1-ubyte.gz"
	if v := os.Getenv("CHANOPT_BENCH_RATIOS"); v != "" {
		var ratios []float64
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return fmt.Errorf("CHANOPT_BENCH_RATIOS: %w", err)
			}
			ratios = append(ratios, r)
		}
		all, err := dataset.Load(fashionTrain, trainLabels, dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: samples})
		if err != nil {
			return err
		}
		return checkEstimate(env, opt, all, test, ratios)
	}
	labels := ""
	if os.Getenv("CHANOPT_BENCH_LABELS") != "" {
		// With the training labels the held-back figure is accuracy instead of the estimate.
		labels = trainLabels
	}
	all, err := dataset.Load(fashionTrain, labels, dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: samples})
	if err != nil {
		return err
	}
	opt.Runtime, _ = optimizer.DefaultRuntime("", 0) // as the CLI: ONNX Runtime's grids when it is found
	opt.Data = all
	figure := optimizer.FigureEstimated
	if labels != "" {
		figure = optimizer.FigureAccuracy
	}
	fmt.Printf("   `chanopt shrink MODEL --data <%d training images> --time %s` (no budget: max drop %g points of held-back %s", all.N, opt.Time, optimizer.DefaultMaxDrop, figure)
	if labels == "" {
		fmt.Printf(", the estimated drop raised by %.0f%% and %g standard errors", 100*optimizer.CalibrationAllowance, optimizer.DropMarginZ)
	}
	fmt.Println("); ONNX Runtime on the 10k test set")
	fmt.Println("   | model | MACs ratio reached | held-back figure (drop) | held-back top-1 agreement | accuracy, 10k test | trials (ratio: drop) | time |")
	fmt.Println("   |---|---|---|---|---|---|---|")
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
			fmt.Printf("   | %s | failed: %v | | | | | %s |\n", name, err, time.Since(start).Round(time.Second))
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
		drop := fmt.Sprintf("%.2f", kept.Drop)
		if kept.Margin > 0 {
			drop = fmt.Sprintf("%.2f + %.2f", kept.Reference-kept.Figure, kept.Margin)
		}
		fmt.Printf("   | %s | %.3f | %.2f%% of %.2f%% (%s) | %.2f%% | %.2f%% → %.2f%% (%+.2f) | %s | %s |\n", name,
			float64(res.Report.After.MACs)/float64(res.Report.Before.MACs), kept.Figure, kept.Reference, drop, kept.Top1,
			100*accB, 100*accA, 100*(accA-accB), strings.Join(trials, ", "), elapsed.Round(time.Second))
	}
	return nil
}

// checkEstimate compares, for each bundled model at each MACs ratio, the accuracy drop the
// search judges without labels (estimated from the original's probabilities on the held-back
// images, as the repair reports it) with the true accuracy drop on the same held-back images
// (their labels, which Shrink is not given) and on the 10k test set, both in ONNX Runtime, and
// prints the original's calibration (mean top probability against accuracy) on both.
func checkEstimate(env *benchEnv, opt optimizer.Options, labelled, test *dataset.Set, ratios []float64) error {
	opt.Runtime, _ = optimizer.DefaultRuntime("", 0)
	unlabelled := *labelled
	unlabelled.Labels = nil
	opt.Data = &unlabelled
	_, val := labelled.Split(opt.HoldBack, opt.Seed) // the images Shrink holds back, with their labels
	fmt.Printf("   `chanopt shrink MODEL --macs R --data <%d unlabelled training images> --time %s` (%d held back); drops in points, ONNX Runtime for the true ones\n",
		labelled.N, opt.Time, val.N)
	fmt.Println("   | model | ratio | MACs kept | held back: estimated drop | held back: judged (with the margin) | held back: true drop | held back: top-1 agreement | 10k test: true drop | 10k test: estimated drop | 10k test: top-1 agreement |")
	fmt.Println("   |---|---|---|---|---|---|---|---|---|---|")
	dir, err := os.MkdirTemp("", "chanopt-estimate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var calib []string
	for _, p := range bundledModels(env) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		m, err := onnx.Load(p)
		if err != nil {
			return err
		}
		origVal, classes, err := ortLogits(p, val)
		if err != nil {
			return err
		}
		origTest, _, err := ortLogits(p, test)
		if err != nil {
			return err
		}
		self := optimizer.EstimateAccuracy(origVal, origVal, classes, "")
		selfTest := optimizer.EstimateAccuracy(origTest, origTest, classes, "")
		accVal := optimizer.Compare(origVal, origVal, classes, val.Labels)
		accTest := optimizer.Compare(origTest, origTest, classes, test.Labels)
		calib = append(calib, fmt.Sprintf("%s: held back %.2f%% mean top probability, %.2f%% accuracy; test %.2f%%, %.2f%%",
			name, 100*self.Original, 100**accVal.Accuracy, 100*selfTest.Original, 100**accTest.Accuracy))
		for _, r := range ratios {
			o := opt
			o.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: r}
			res, err := optimizer.Shrink(context.Background(), m, o)
			if err != nil {
				fmt.Printf("   | %s | %.3g | failed: %v |\n", name, r, err)
				continue
			}
			out := filepath.Join(dir, fmt.Sprintf("%s-%g.onnx", name, r))
			if err := onnx.Save(out, res.Model, onnx.WriteOptions{}); err != nil {
				return err
			}
			final := res.Report.Distill.Final()
			if len(final.Outputs) != 1 || final.Outputs[0].Estimated == nil {
				return fmt.Errorf("%s: the repair's report has no accuracy estimate", name)
			}
			est := final.Outputs[0].Estimated
			slimVal, _, err := ortLogits(out, val)
			if err != nil {
				return err
			}
			slimTest, _, err := ortLogits(out, test)
			if err != nil {
				return err
			}
			onVal := optimizer.Compare(origVal, slimVal, classes, val.Labels)
			onTest := optimizer.Compare(origTest, slimTest, classes, test.Labels)
			estTest := optimizer.EstimateAccuracy(origTest, slimTest, classes, "")
			fmt.Printf("   | %s | %.3g | %.3f | %.2f ± %.2f | %.2f | %.2f | %.2f%% | %.2f | %.2f | %.2f%% |\n", name, r,
				float64(res.Report.After.MACs)/float64(res.Report.Before.MACs),
				100*est.Drop, 100*est.DropSE, 100*(est.Drop+est.Margin()), 100*(*onVal.Teacher-*onVal.Accuracy), 100*onVal.Top1,
				100*(*onTest.Teacher-*onTest.Accuracy), 100*estTest.Drop, 100*onTest.Top1)
		}
	}
	fmt.Println()
	fmt.Println("   The originals' calibration (an estimate is conservative where the mean top probability exceeds the accuracy):")
	for _, c := range calib {
		fmt.Printf("   - %s\n", c)
	}
	return nil
}

// ortLogits runs the model at path over set in ONNX Runtime (2 threads) and returns its first
// output for every image (N × classes, flattened) and the class count.
func ortLogits(path string, set *dataset.Set) ([]float32, int, error) {
	s, err := ort.Open(path, 2)
	if err != nil {
		return nil, 0, err
	}
	defer s.Close()
	return ortRun(s, set)
}

// ortRun is ortLogits in an open session, in batches of 500 images.
func ortRun(s *ort.Session, set *dataset.Set) ([]float32, int, error) {
	per := set.C * set.H * set.W
	var logits []float32
	const batch = 500
	for i := 0; i*batch < set.N; i++ {
		x := set.Batch(i, batch)
		out, err := s.Run([]ort.Tensor{{Shape: []int64{int64(len(x) / per), int64(set.C), int64(set.H), int64(set.W)}, Data: x}})
		if err != nil {
			return nil, 0, err
		}
		logits = append(logits, out[0].Data...)
	}
	return logits, len(logits) / max(set.N, 1), nil
}

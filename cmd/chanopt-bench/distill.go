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
	"github.com/chanopt/chanopt/ort"
)

// fashionTrain is Debian's Fashion-MNIST training set: the calibration data of the distillation
// benchmark (used without its labels).
const fashionTrain = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
const fashionTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
const fashionTestLabels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"

// ortEval returns accuracy on a labelled set and the median batch-1 latency, both in ONNX Runtime.
func ortEval(path string, set *dataset.Set) (acc float64, latency time.Duration, err error) {
	s, err := ort.Open(path, 2)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	logits, classes, err := ortRun(s, set)
	if err != nil {
		return 0, 0, err
	}
	a := optimizer.Compare(logits, logits, classes, set.Labels)
	one := []ort.Tensor{{Shape: []int64{1, int64(set.C), int64(set.H), int64(set.W)}, Data: set.Batch(0, 1)}}
	latency, err = median(200, func() error { _, err := s.Run(one); return err })
	return *a.Accuracy, latency, err
}

// benchDistill runs the whole pipeline the way `chanopt shrink MODEL --macs 0.5 --data
// <Fashion-MNIST training images>` does on every bundled model, and reports per stage the agreement
// on held-back images, and accuracy and latency before and after in ONNX Runtime on the 10k test set.
func benchDistill(env *benchEnv) error {
	samples := 60000
	if v := os.Getenv("CHANOPT_BENCH_SAMPLES"); v != "" {
		fmt.Sscan(v, &samples)
	}
	test, err := dataset.Load(fashionTest, fashionTestLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		return err
	}
	all, err := dataset.Load(fashionTrain, "", dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: samples})
	if err != nil {
		return err
	}
	opt := optimizer.DefaultOptions()
	opt.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
	opt.Runtime, _ = optimizer.DefaultRuntime("", 0) // as the CLI: ONNX Runtime's grids when it is found
	opt.Data = all
	held := int(float64(all.N)*opt.HoldBack + 0.5)
	fmt.Printf("   `chanopt shrink MODEL --macs 0.5 --data <%d unlabelled training images>` (optimizer.Shrink with the CLI's defaults: %d held back, --time %s, up to %g epochs of KD); ONNX Runtime on the 10k test set\n",
		all.N, held, opt.Time, opt.Epochs)
	fmt.Println("   | model | params | MACs | accuracy | ORT latency (batch 1) | stages: held-back agreement | time |")
	fmt.Println("   |---|---|---|---|---|---|---|")
	paths := bundledModels(env)
	dir, err := os.MkdirTemp("", "chanopt-distill")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, p := range paths {
		start := time.Now()
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		m, err := onnx.Load(p)
		if err != nil {
			return err
		}
		res, err := optimizer.Shrink(context.Background(), m, opt)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rep := res.Report.Distill
		elapsed := time.Since(start)
		out := filepath.Join(dir, name+".slim.onnx")
		if err := onnx.Save(out, res.Model, onnx.WriteOptions{}); err != nil {
			return err
		}
		before, after := res.Report.Before, res.Report.After
		accB, latB, err := ortEval(p, test)
		if err != nil {
			return err
		}
		accA, latA, err := ortEval(out, test)
		if err != nil {
			return err
		}
		var stages []string
		for _, s := range rep.Stages {
			mark := ""
			if !s.Kept {
				mark = " (undone)"
			}
			stages = append(stages, fmt.Sprintf("%s %.1f%%%s", s.Name, 100*s.Agreement.Top1, mark))
		}
		fmt.Printf("   | %s | %d → %d | %.2fM → %.2fM (%.3f) | %.2f%% → %.2f%% (%+.2f) | %.3f → %.3f ms | %s | %s |\n", name,
			before.Params, after.Params, float64(before.MACs)/1e6, float64(after.MACs)/1e6, float64(after.MACs)/float64(before.MACs),
			100*accB, 100*accA, 100*(accA-accB), float64(latB.Microseconds())/1000, float64(latA.Microseconds())/1000,
			strings.Join(stages, ", "), elapsed.Round(time.Second))
	}
	return nil
}

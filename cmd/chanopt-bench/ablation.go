package main

import (
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// ablationConfig is what one ablation run does; ablationFromEnv reads it from the environment so
// that a reduced run (fewer seeds, models, proposals or fine-tuning) is one variable away.
type ablationConfig struct {
	models     []string // paths
	seeds      []uint64
	variants   []string // "uniform", a guide's name, or "adapt" (the default guide, then --adapt)
	iterations int      // proposals per search, fixed (no time limit): every guide does the same work
	samples    int      // Fashion-MNIST training images handed to Shrink
	holdBack   float64
	epochs     float64       // KD fine-tuning epochs after the statistics repair and refit
	tune       time.Duration // cap on the fine-tuning (0: none)
}

// ablationFromEnv reads
//
//	CHANOPT_ABLATION_MODELS  comma-separated names: bundled (models/NAME.onnx) or unseen
//	                         ($CHANOPT_UNSEEN/NAME.onnx, default models/unseen, made by
//	                         models/train/unseen.py); default all six bundled and the three unseen
//	CHANOPT_ABLATION_SEEDS   comma-separated seeds (default 1,2,3)
//	CHANOPT_ABLATION_GUIDES  comma-separated variants: uniform, guide names and adapt (the
//	                         default search with the adaptive sizing during the fine-tuning,
//	                         --adapt); default all
//	CHANOPT_ABLATION_ITERS   proposals per search (default 150, the CLI's with data)
//	CHANOPT_ABLATION_SAMPLES training images given to Shrink (default 6000)
//	CHANOPT_ABLATION_HOLDBACK the share of them held back to judge agreement (default 0.25)
//	CHANOPT_ABLATION_EPOCHS  KD fine-tuning epochs (default 1; 0: statistics and refit only)
//	CHANOPT_ABLATION_TUNE    cap on each fine-tuning, a Go duration (default none)
//	CHANOPT_ABLATION_RESULTS where finished runs are kept so that a stopped run resumes (default
//	                         models/ablation.jsonl, committed; see ablation_kept.go)
//	CHANOPT_ABLATION_CODE    print the results another build kept (its code digest, as the
//	                         bench prints it) instead of running this build's: runs missing
//	                         from the file are reported, not run
func ablationFromEnv(env *benchEnv) (ablationConfig, error) {
	c := ablationConfig{seeds: []uint64{1, 2, 3}, iterations: 150, samples: 6000, holdBack: 0.25, epochs: 1}
	c.variants = []string{"uniform"}
	for _, g := range optimizer.Guides {
		c.variants = append(c.variants, string(g))
	}
	c.variants = append(c.variants, variantAdapt)
	// The unseen models are committed for the ablation (models/unseen, made by
	// models/train/unseen.py), so that its kept results, keyed by the model's bytes, hold on a
	// machine that would train them again to other bytes.
	unseen := os.Getenv("CHANOPT_UNSEEN")
	if unseen == "" {
		unseen = filepath.Join(env.models, "unseen")
	}
	names := []string{"densenet", "mobilenetv2_se", "resnet8", "resnet8_bn", "resnext", "vgg", "dwres_silu", "inception_lrelu", "wide_prelu_bn"}
	if v := os.Getenv("CHANOPT_ABLATION_MODELS"); v != "" {
		names = strings.Split(v, ",")
	}
	for _, n := range names {
		p := filepath.Join(env.models, n+".onnx")
		if _, err := os.Stat(p); err != nil {
			p = filepath.Join(unseen, n+".onnx")
			if _, err := os.Stat(p); err != nil {
				return c, fmt.Errorf("model %s: neither in %s nor in %s (make the unseen ones with /usr/bin/python3 models/train/unseen.py models/unseen)", n, env.models, unseen)
			}
		}
		c.models = append(c.models, p)
	}
	if v := os.Getenv("CHANOPT_ABLATION_SEEDS"); v != "" {
		c.seeds = nil
		for _, f := range strings.Split(v, ",") {
			s, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return c, fmt.Errorf("CHANOPT_ABLATION_SEEDS: %w", err)
			}
			c.seeds = append(c.seeds, s)
		}
	}
	if v := os.Getenv("CHANOPT_ABLATION_GUIDES"); v != "" {
		c.variants = strings.Split(v, ",")
		for _, g := range c.variants {
			if g == "uniform" || g == variantAdapt {
				continue
			}
			if _, err := optimizer.ParseGuide(g); err != nil {
				return c, fmt.Errorf("CHANOPT_ABLATION_GUIDES: %w", err)
			}
		}
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"CHANOPT_ABLATION_ITERS", &c.iterations}, {"CHANOPT_ABLATION_SAMPLES", &c.samples}} {
		if v := os.Getenv(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("%s=%q: want a positive count", f.name, v)
			}
			*f.dst = n
		}
	}
	if v := os.Getenv("CHANOPT_ABLATION_HOLDBACK"); v != "" {
		h, err := strconv.ParseFloat(v, 64)
		if err != nil || !(h > 0 && h < 1) {
			return c, fmt.Errorf("CHANOPT_ABLATION_HOLDBACK=%q: want a share between 0 and 1", v)
		}
		c.holdBack = h
	}
	if v := os.Getenv("CHANOPT_ABLATION_EPOCHS"); v != "" {
		e, err := strconv.ParseFloat(v, 64)
		if err != nil || e < 0 {
			return c, fmt.Errorf("CHANOPT_ABLATION_EPOCHS=%q: want epochs, 0 or more", v)
		}
		c.epochs = e
	}
	if v := os.Getenv("CHANOPT_ABLATION_TUNE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("CHANOPT_ABLATION_TUNE: %w", err)
		}
		c.tune = d
	}
	if c.epochs == 0 && slices.Contains(c.variants, variantAdapt) {
		return c, fmt.Errorf("the adapt variant moves channels during the fine-tuning: give CHANOPT_ABLATION_EPOCHS > 0, or leave adapt out of CHANOPT_ABLATION_GUIDES")
	}
	return c, nil
}

// variantAdapt is the ablation's variant with the adaptive sizing on (Options.Adapt).
const variantAdapt = "adapt"

// benchAblation: does the metric guidance earn its place? Each model is shrunk to half its MACs by
// optimizer.Shrink with every guide of the annealer's proposals (rank, rank with degenerate sides
// weighted, QC, MC, measured sensitivity, reversed rank, none), by the uniform split, and by the
// default search followed by the adaptive sizing during the fine-tuning (adapt), at the
// same fixed number of proposals (no time limit), with the same repair, over several seeds (the
// seed draws the held-back split, the search and the fine-tuning). It prints held-back agreement
// with the original and Fashion-MNIST test accuracy, mean ± sd over seeds, as markdown.
func benchAblation(env *benchEnv) error {
	c, err := ablationFromEnv(env)
	if err != nil {
		return err
	}
	all, err := dataset.Load(fashionTrain, "", dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: c.samples})
	if err != nil {
		return err
	}
	test, err := dataset.Load(fashionTest, fashionTestLabels, dataset.Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		return err
	}
	tune := "no cap"
	if c.tune > 0 {
		tune = "at most " + c.tune.String()
	}
	fmt.Printf("   --macs 0.5, widths on multiples of 1; %d training images (%.0f%% held back); %d proposals per search (fixed, no time limit); repair: statistics, refit, %g epochs of KD (%s); seeds %v; load average %s\n",
		all.N, 100*c.holdBack, c.iterations, c.epochs, tune, c.seeds, loadAverage())
	type cell struct{ agree, acc []float64 }
	results := map[string]map[string]*cell{}
	var names []string
	models := map[string]*onnx.Model{}
	hashes := map[string]string{} // of each model's file: a regenerated unseen model is another model
	for _, p := range c.models {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		hashes[name] = fmt.Sprintf("%x", sha256.Sum256(b))
		m, err := onnx.Load(p)
		if err != nil {
			return err
		}
		base, err := testAccuracy(m, test)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Printf("   %s: original test accuracy %.2f%%\n", name, 100*base)
		names = append(names, name)
		models[name] = m
		results[name] = map[string]*cell{}
		for _, v := range c.variants {
			results[name][v] = &cell{}
		}
	}
	kept, why := openAblationResults(c)
	switch {
	case why != "":
		fmt.Printf("   results are not kept between runs: %s\n", why)
	case kept.readOnly:
		fmt.Printf("   the results code %s kept in %s (read only: runs missing there are not run by this build)\n", kept.code, kept.path)
	default:
		fmt.Printf("   results kept in %s (a run stopped early resumes there; code %s)\n", kept.path, kept.code)
	}
	missing := 0
	began := time.Now()
	// Seeds outermost: a run stopped early still has every model and variant at the first seeds.
	for _, seed := range c.seeds {
		for _, name := range names {
			m := models[name]
			for _, v := range c.variants {
				cl := results[name][v]
				key := kept.key(c, hashes[name], v, seed)
				r, done := kept.done[key]
				from := ""
				switch {
				case done:
					from = "; kept from a run on " + r.Date
				case kept.readOnly:
					fmt.Printf("   %s %s seed %d: not in the results\n", name, v, seed)
					missing++
					continue
				default:
					var err error
					if r, err = ablationRun(c, name, m, test, all, v, seed); err != nil {
						return fmt.Errorf("%s %s seed %d: %w", name, v, seed, err)
					}
				}
				cl.agree = append(cl.agree, r.Agreement)
				cl.acc = append(cl.acc, r.Accuracy)
				fmt.Printf("   %s %s seed %d: agreement %.2f%%, test accuracy %.2f%%, MACs %.3f (%s%s%s)\n", name, v, seed,
					r.Agreement, r.Accuracy, r.MACs, time.Duration(r.Seconds*float64(time.Second)).Round(time.Second), r.Detail, from)
				if !done {
					if err := kept.add(key, r); err != nil {
						return err
					}
				}
			}
		}
	}
	fmt.Printf("   all runs: %s\n\n", time.Since(began).Round(time.Second))
	if missing > 0 {
		fmt.Printf("   %d runs are missing: a cell over fewer seeds says how many in brackets, — over none\n\n", missing)
	}
	for _, what := range []string{"held-back agreement with the original", "Fashion-MNIST test accuracy"} {
		if len(c.seeds) == 1 {
			fmt.Printf("   %s, %%, seed %d:\n\n", what, c.seeds[0])
		} else {
			fmt.Printf("   %s, %%, mean ± sd over %d seeds:\n\n", what, len(c.seeds))
		}
		fmt.Printf("   | model | %s |\n   |---|%s\n", strings.Join(c.variants, " | "), strings.Repeat("---|", len(c.variants)))
		for _, n := range names {
			var cols []string
			for _, v := range c.variants {
				xs := results[n][v].agree
				if what != "held-back agreement with the original" {
					xs = results[n][v].acc
				}
				cols = append(cols, seedCell(xs, len(c.seeds)))
			}
			fmt.Printf("   | %s | %s |\n", n, strings.Join(cols, " | "))
		}
		fmt.Println()
	}
	// Over the models every variant ran on (all of them once the run is whole): each variant's
	// agreement averaged, and on how many it is above or below the uniform split's, spread aside.
	var whole []string
	for _, n := range names {
		if !slices.ContainsFunc(c.variants, func(v string) bool { return len(results[n][v].agree) == 0 }) {
			whole = append(whole, n)
		}
	}
	if len(whole) > 0 && slices.Contains(c.variants, "uniform") {
		fmt.Printf("   over the %d models every variant ran on (%s), mean agreement and models above / below the uniform split's:\n", len(whole), strings.Join(whole, ", "))
		for _, v := range c.variants {
			var sum float64
			above, below := 0, 0
			for _, n := range whole {
				m, _ := meanSD(results[n][v].agree)
				u, _ := meanSD(results[n]["uniform"].agree)
				sum += m
				if m > u {
					above++
				} else if m < u {
					below++
				}
			}
			fmt.Printf("     %-14s %.2f%%  %d / %d\n", v, sum/float64(len(whole)), above, below)
		}
		fmt.Println()
	}
	// Against the uniform split: on how many models does each guide's mean agreement beat it by
	// more than the larger of the two seed spreads?
	for _, v := range c.variants {
		if v == "uniform" || results[names[0]]["uniform"] == nil {
			continue
		}
		wins, compared := 0, 0
		for _, n := range names {
			if len(results[n]["uniform"].agree) < 2 || len(results[n][v].agree) < 2 {
				continue // no spread to beat
			}
			compared++
			mu, su := meanSD(results[n]["uniform"].agree)
			mg, sg := meanSD(results[n][v].agree)
			if mg-mu > max(su, sg) {
				wins++
			}
		}
		fmt.Printf("   %s beats the uniform split's agreement by more than the seed spread on %d of %d models (%d with two seeds or more of both)\n", v, wins, len(names), compared)
	}
	// The adaptive sizing against the same search without it (issue 19: it becomes the default
	// only if it beats the static allocation on most models).
	static := string(optimizer.GuideRank)
	if results[names[0]][variantAdapt] != nil && results[names[0]][static] != nil {
		wins, losses, compared := 0, 0, 0
		for _, n := range names {
			if len(results[n][static].agree) < 2 || len(results[n][variantAdapt].agree) < 2 {
				continue
			}
			compared++
			ms, ss := meanSD(results[n][static].agree)
			ma, sa := meanSD(results[n][variantAdapt].agree)
			switch {
			case ma-ms > max(ss, sa):
				wins++
			case ms-ma > max(ss, sa):
				losses++
			}
		}
		fmt.Printf("   adapt against the same search without it (%s): better by more than the seed spread on %d of %d models, worse on %d (%d with two seeds or more of both)\n", static, wins, len(names), losses, compared)
	}
	return nil
}

// testAccuracy is m's top-1 accuracy on a labelled set, in chanopt's engine.
func testAccuracy(m *onnx.Model, set *dataset.Set) (float64, error) {
	p, err := engine.Compile(m, engine.Options{})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	logits, classes, err := optimizer.Logits(p, set, 500)
	if err != nil {
		return 0, err
	}
	a := optimizer.Compare(logits, logits, classes, set.Labels)
	return *a.Accuracy, nil
}

// seedCell is a table cell of the values over seeds: mean ± sd (the value alone for one seed),
// with the count in brackets when fewer than want seeds ran, — when none did.
func seedCell(xs []float64, want int) string {
	if len(xs) == 0 {
		return "—"
	}
	mu, sd := meanSD(xs)
	cell := fmt.Sprintf("%.2f ± %.2f", mu, sd)
	if len(xs) == 1 {
		cell = fmt.Sprintf("%.2f", mu)
	}
	if len(xs) < want {
		cell += fmt.Sprintf(" (%d)", len(xs))
	}
	return cell
}

// meanSD is the mean and the sample standard deviation (0 for one value).
func meanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

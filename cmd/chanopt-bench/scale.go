package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// scaleModels are the real-size networks of the scale section (torchvision layouts at 224×224
// from `make zoo`; random weights, so the figures are of time and memory, not accuracy).
var scaleModels = []string{"resnet18", "resnet50", "mobilenet_v2"}

// trainedScaleModel is the real-size network with trained weights (`make models-large`): the
// ResNet-18 layout at 3×112×112, for the accuracy the zoo's random weights cannot show. Under
// models/large/, so the globs over models/*.onnx (the six bundled 28×28 models) do not see it.
// CHANOPT_SCALE_MODELS (comma-separated zoo names and trainedScaleName) runs only those rows.
const (
	trainedScaleModel = "large/resnet18q.onnx"
	trainedScaleName  = "resnet18q"
)

// benchScale runs `chanopt shrink MODEL --macs 0.5 --data PHOTOS` as a user would (the built
// binary, a folder of 1,000 224×224 JPEGs from `make photos`, ImageNet mean and std for the zoo
// nets, every other flag at its default) and prints the wall time of each stage and in all, the
// peak RSS of the process, and the longest interval without a line on stderr. For the trained
// model it also measures test accuracy before and after, and top-1 agreement with the original,
// on the held-out set of `make large-test`.
func benchScale(env *benchEnv) error {
	photos := os.Getenv("CHANOPT_PHOTOS")
	if photos == "" {
		return fmt.Errorf("CHANOPT_PHOTOS is not set (make bench sets it after make photos)")
	}
	bin, dir, err := builtBinary("chanopt-scale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		// The machine may be shared: wall times mean little without the load they ran under.
		fmt.Printf("   load average at the start: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
	zoo, trained := scaleModels, true
	if only := os.Getenv("CHANOPT_SCALE_MODELS"); only != "" {
		zoo, trained = nil, false
		for _, n := range strings.Split(only, ",") {
			if n == trainedScaleName {
				trained = true
			} else {
				zoo = append(zoo, n)
			}
		}
	}
	if len(zoo) > 0 {
		fmt.Printf("   `chanopt shrink MODEL --macs 0.5 --data <%s> --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225`, defaults otherwise (--time %s)\n",
			photos, optimizer.DefaultOptions().Time)
		fmt.Println("   | model | total | stages (s) | peak RSS | longest silence | MACs kept | held-back agreement |")
		fmt.Println("   |---|---|---|---|---|---|---|")
	}
	for _, name := range zoo {
		run, err := shrinkAsUser(bin, dir, filepath.Join(env.zoo, name+".onnx"), photos,
			"--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
		if err != nil {
			return err
		}
		fmt.Printf("   | %s | %s |\n", name, run.cells())
	}
	if len(zoo) > 0 && trained {
		fmt.Println()
	}
	if !trained {
		return nil
	}
	return benchScaleTrained(env, bin, dir, photos)
}

// benchScaleTrained is the trained model's row: the shrink as above (the model takes pixel/255,
// so no mean or std), then `chanopt eval` of the slim model against the original on the labelled
// held-out set.
func benchScaleTrained(env *benchEnv, bin, dir, photos string) error {
	model := filepath.Join(env.models, trainedScaleModel)
	test := os.Getenv("CHANOPT_LARGE_TEST")
	if test == "" {
		home, _ := os.UserHomeDir()
		test = filepath.Join(home, ".cache", "chanopt", "large-test")
	}
	images, labels := filepath.Join(test, "images.npy"), filepath.Join(test, "labels.npy")
	if _, err := os.Stat(labels); err != nil {
		return fmt.Errorf("%s: %w (make large-test writes the held-out set)", labels, err)
	}
	fmt.Printf("   trained: `chanopt shrink %s --macs 0.5 --data <%s>`, defaults otherwise; then `chanopt eval SLIM --teacher %s --data %s --labels %s`\n",
		model, photos, model, images, labels)
	fmt.Println("   | model | total | stages (s) | peak RSS | longest silence | MACs kept | held-back agreement | test acc. before → after | test top-1 agreement |")
	fmt.Println("   |---|---|---|---|---|---|---|---|---|")
	run, err := shrinkAsUser(bin, dir, model, photos)
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "eval", run.slim, "--teacher", model, "--data", images, "--labels", labels, "--json").Output()
	if err != nil {
		return fmt.Errorf("eval %s: %v", run.slim, err)
	}
	var ev struct {
		Images   int                  `json:"images"`
		Accuracy *float64             `json:"accuracy"`
		Agree    *optimizer.Agreement `json:"agreement"`
	}
	if err := json.Unmarshal(out, &ev); err != nil {
		return fmt.Errorf("eval %s: %v", run.slim, err)
	}
	if ev.Accuracy == nil || ev.Agree == nil || ev.Agree.Teacher == nil {
		return fmt.Errorf("eval %s: no accuracy or agreement in %s", run.slim, out)
	}
	fmt.Printf("   | %s | %s | %.2f%% → %.2f%% (%d images) | %.2f%% |\n", trainedScaleName,
		run.cells(), 100**ev.Agree.Teacher, 100**ev.Accuracy, ev.Images, 100*ev.Agree.Top1)
	bands, err := agreementByMargin(model, run.slim, images)
	if err != nil {
		return err
	}
	fmt.Printf("\n   test top-1 agreement by the original's margin (its top softmax probability minus its second):\n")
	fmt.Println("   | original's margin | share of test images | agreement there | disagreements, % of all images |")
	fmt.Println("   |---|---|---|---|")
	for _, b := range bands {
		fmt.Printf("   | %s | %.2f%% | %.2f%% | %.2f |\n", b.name, 100*float64(b.images)/float64(ev.Images),
			100*float64(b.agree)/float64(max(b.images, 1)), 100*float64(b.images-b.agree)/float64(ev.Images))
	}
	return nil
}

// marginBand is the slim model's top-1 agreement on the test images whose original's margin
// falls in a band.
type marginBand struct {
	name          string
	images, agree int
}

// marginEdges bound the bands: where the original's two best classes are nearly tied, any
// student flips many images (a coin toss), so agreement there says little about the repair.
var marginEdges = []float64{0.2, 0.4, 0.7}

// agreementByMargin runs the original and the slim model on the test images in chanopt's engine
// and splits their top-1 agreement by the original's margin.
func agreementByMargin(original, slim, images string) ([]marginBand, error) {
	// The trained model reads 3×112×112 (pixel/255); the .npy holds the images at that size.
	set, err := dataset.Load(images, "", dataset.Options{Channels: 3})
	if err != nil {
		return nil, err
	}
	logits := func(path string) ([]float32, int, error) {
		m, err := onnx.Load(path)
		if err != nil {
			return nil, 0, err
		}
		p, err := engine.Compile(m, engine.Options{})
		if err != nil {
			return nil, 0, err
		}
		defer p.Close()
		return optimizer.Logits(p, set, 64)
	}
	t, classes, err := logits(original)
	if err != nil {
		return nil, err
	}
	st, _, err := logits(slim)
	if err != nil {
		return nil, err
	}
	bands := make([]marginBand, len(marginEdges)+1)
	lo := 0.0
	for i := range bands {
		hi := "1"
		if i < len(marginEdges) {
			hi = fmt.Sprint(marginEdges[i])
		}
		bands[i].name = fmt.Sprintf("%v–%s", lo, hi)
		if i < len(marginEdges) {
			lo = marginEdges[i]
		}
	}
	for i := 0; i < len(t)/classes; i++ {
		row := t[i*classes : (i+1)*classes]
		first, margin := topTwo(row)
		k := 0
		for k < len(marginEdges) && margin >= marginEdges[k] {
			k++
		}
		bands[k].images++
		if s, _ := topTwo(st[i*classes : (i+1)*classes]); s == first {
			bands[k].agree++
		}
	}
	return bands, nil
}

// topTwo is the top class of a row of logits and its softmax probability's lead over the second.
func topTwo(logits []float32) (int, float64) {
	first, second := -1, -1
	for c, v := range logits {
		switch {
		case first < 0 || v > logits[first]:
			first, second = c, first
		case second < 0 || v > logits[second]:
			second = c
		}
	}
	if second < 0 {
		return first, 1
	}
	sum := 0.0
	for _, v := range logits {
		sum += math.Exp(float64(v - logits[first]))
	}
	return first, (1 - math.Exp(float64(logits[second]-logits[first]))) / sum
}

// shrinkRun is what one `chanopt shrink` as a user runs it measured.
type shrinkRun struct {
	total, longest time.Duration
	peak           int64 // bytes
	report         optimizer.Report
	slim           string
}

// cells formats the run as the common cells of the scale tables (total to held-back agreement).
func (r shrinkRun) cells() string {
	// A stage that recurs (the search and its parts, once per width grid) is summed under its
	// name, in the order the stages first ran.
	var names []string
	seconds := map[string]float64{}
	for _, t := range r.report.Timings {
		if t.Stage == "total" {
			continue
		}
		if _, seen := seconds[t.Stage]; !seen {
			names = append(names, t.Stage)
		}
		seconds[t.Stage] += t.Seconds
	}
	var stages []string
	for _, n := range names {
		stages = append(stages, fmt.Sprintf("%s %.0f", n, seconds[n]))
	}
	agree := "-"
	if d := r.report.Distill; d != nil && len(d.Stages) > 0 {
		agree = fmt.Sprintf("%.2f%%", 100*d.Final().Top1)
	}
	return fmt.Sprintf("%s | %s | %.2f GiB | %.1f s | %.3f | %s", r.total.Round(time.Second), strings.Join(stages, ", "),
		float64(r.peak)/(1<<30), r.longest.Seconds(), float64(r.report.After.MACs)/float64(r.report.Before.MACs), agree)
}

// shrinkAsUser runs `bin shrink model --macs 0.5 --data data extra...` writing into dir, and
// measures its wall time, peak RSS and longest silence on stderr.
func shrinkAsUser(bin, dir, model, data string, extra ...string) (shrinkRun, error) {
	name := strings.TrimSuffix(filepath.Base(model), ".onnx")
	rep := filepath.Join(dir, name+".json")
	run := shrinkRun{slim: filepath.Join(dir, name+".slim.onnx")}
	args := append([]string{"shrink", model, "--macs", "0.5", "--data", data}, extra...)
	cmd := exec.Command(bin, append(args, "-o", run.slim, "--report", rep)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return run, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return run, err
	}
	// The longest silence is measured from the start to the first line, between lines, and
	// from the last line to the exit.
	last := start
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		now := time.Now()
		run.longest = max(run.longest, now.Sub(last))
		last = now
		tail = append(tail, sc.Text())
		if len(tail) > 5 {
			tail = tail[1:]
		}
	}
	err = cmd.Wait()
	run.total = time.Since(start)
	run.longest = max(run.longest, time.Since(last))
	if err != nil {
		return run, fmt.Errorf("%s: %v: %s", name, err, strings.Join(tail, " | "))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.peak = ru.Maxrss * 1024 // kilobytes on Linux
	}
	b, err := os.ReadFile(rep)
	if err != nil {
		return run, err
	}
	if err := json.Unmarshal(b, &run.report); err != nil {
		return run, fmt.Errorf("%s: %v", rep, err)
	}
	return run, nil
}

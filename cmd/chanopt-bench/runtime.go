package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
)

// runtimeModels are the torchvision layouts of issue 14's acceptance, at 224×224 from `make zoo`.
var runtimeModels = []string{"resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf", "mobilenet_v3_small"}

// runtimeTiming is how long the originals and their slim models are timed, alternately.
const runtimeTiming = 4 * time.Second

// benchRuntime runs the built binary as a user would, `chanopt shrink MODEL --macs 0.5
// --no-distill` and `--latency 0.5 --no-distill` with every other flag at its default (so
// ONNX Runtime is the runtime and chooses the width grid), then times the original and both slim
// models alternately in ONNX Runtime at batch 1 and prints the latency ratios beside the MACs
// ratios. The floor is the latency of the model with every prunable group at its smallest width
// (one channel, or on the grid of 8, whichever runs faster): what the ops no channel cut shrinks
// take, the best any width search can reach.
func benchRuntime(env *benchEnv) error {
	rt, err := optimizer.NewORTRuntime("", 0)
	if err != nil {
		return err
	}
	bin, dir, err := builtBinary("chanopt-runtime")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("   ONNX Runtime %s, %d threads, batch 1; ratios are slim/original latency timed alternately (median of ≥ %s each); load average %s\n",
		rt.Version(), rt.Threads(), runtimeTiming, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Println("   | model | --macs 0.5: latency (MACs, grid) | --latency 0.5: latency (MACs) | floor | shrink s (macs, latency) |")
	fmt.Println("   |---|---|---|---|---|")
	for _, name := range runtimeModels {
		if err := runtimeRow(env, bin, dir, name, rt); err != nil {
			fmt.Printf("   | %s | FAILED: %v |\n", name, err)
		}
	}
	return nil
}

// runtimeRow shrinks one zoo model both ways and prints its row.
func runtimeRow(env *benchEnv, bin, dir, name string, rt optimizer.Runtime) error {
	model := filepath.Join(env.zoo, name+".onnx")
	type run struct {
		budget string
		slim   string
		rep    optimizer.Report
		note   string
		took   time.Duration
	}
	runs := []*run{{budget: "--macs"}, {budget: "--latency"}}
	for _, r := range runs {
		r.slim = filepath.Join(dir, name+r.budget+".onnx")
		rep := filepath.Join(dir, name+r.budget+".json")
		start := time.Now()
		out, err := exec.Command(bin, "shrink", model, r.budget, "0.5", "--no-distill", "-o", r.slim, "--report", rep).CombinedOutput()
		r.took = time.Since(start)
		if err != nil {
			if !strings.Contains(string(out), "SLOWER") {
				return fmt.Errorf("shrink %s 0.5: %v: %s", r.budget, err, lastLines(string(out), 2))
			}
			r.note = " SLOWER"
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r.rep); err != nil {
			return fmt.Errorf("%s: %w", rep, err)
		}
	}
	m, err := onnx.Load(model)
	if err != nil {
		return err
	}
	shapes, err := onnx.BatchOne(m.Graph, nil)
	if err != nil {
		return err
	}
	models := []*onnx.Model{m}
	for _, r := range runs {
		s, err := onnx.Load(r.slim)
		if err != nil {
			return err
		}
		models = append(models, s)
	}
	for _, grid := range []int{1, 8} {
		f, err := smallest(m, grid)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		models = append(models, f)
	}
	ts, err := optimizer.TimeAlternately(rt, models, shapes, runtimeTiming)
	if err != nil {
		return err
	}
	ratio := func(i int) float64 { return float64(ts[i].Median) / float64(ts[0].Median) }
	macs := func(r *run) float64 { return float64(r.rep.After.MACs) / float64(r.rep.Before.MACs) }
	grid := "-"
	if rr := runs[0].rep.Runtime; rr != nil && rr.RoundTo > 0 {
		grid = fmt.Sprint(rr.RoundTo)
	}
	fmt.Printf("   | %s | %.3f (%.3f, %s)%s | %.3f (%.3f)%s | %.3f | %.0f, %.0f |\n", name,
		ratio(1), macs(runs[0]), grid, runs[0].note, ratio(2), macs(runs[1]), runs[1].note,
		min(ratio(3), ratio(4)), runs[0].took.Seconds(), runs[1].took.Seconds())
	return nil
}

// smallest is m with every prunable group at its smallest width on the grid (the group's blocks
// for a grouped conv), keeping the channels of largest L1 norm.
func smallest(m *onnx.Model, grid int) (*onnx.Model, error) {
	a, err := rewrite.Groups(m)
	if err != nil {
		return nil, err
	}
	widths := map[rewrite.GroupID]int{}
	for _, g := range a.Prunable() {
		widths[g.ID] = optimizer.Width(g, 0, grid)
	}
	return a.Slice(optimizer.KeepWidths(a, optimizer.L1Importance(a), widths))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
)

// runtimeModels are the torchvision layouts of issue 14's acceptance, at 224×224 from `make zoo`
// (CHANOPT_BENCH_ZOO, comma-separated, names others; empty: none).
var runtimeModels = []string{"resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf", "mobilenet_v3_small"}

// runtimeHeader heads each table of benchRuntime.
const runtimeHeader = "   | model | --macs 0.5: latency (MACs, grid, predicted, shrink's proof) | --latency 0.5: latency (MACs) | floor (bound) | random allocations: fastest, median (count) | shrink s (macs, latency) |\n   |---|---|---|---|---|---|"

// randomCutCount is how many random allocations at the --macs result's MACs are timed beside it.
const randomCutCount = 6

// runtimeTiming is how long the originals and their slim models are timed, alternately: nine
// models take a zoo net several seconds a round, and the ratios need about ten rounds or more to
// settle (optimizer.TimeAlternately).
const runtimeTiming = 15 * time.Second

// benchRuntime runs the built binary as a user would, `chanopt shrink MODEL --macs 0.5
// --no-distill` and `--latency 0.5 --no-distill` with every other flag at its default (so
// ONNX Runtime is the runtime and chooses the width grid), then times the original and both slim
// models alternately in ONNX Runtime and prints the latency ratios beside the MACs ratios: the
// 224×224 zoo at batch 1, the bundled 28×28 models at batch 64 (`--latency-batch 64`) and at
// batch 1. The floor is the latency of the model with every prunable group at its smallest width
// (one channel, or on the grid of 8, whichever runs faster): what the ops no channel cut shrinks
// take, the best any width search can reach; the bound beside it is the floor kept whole and the
// rest shrunk with the --macs result's MACs (what the issue asks a net to come within 0.05 of
// where the floor holds it above 0.6). Beside them, random allocations at the --macs result's
// MACs on its grid (randomCuts), timed in the same rounds: the fastest of them says whether the
// search's allocation is what holds a net above its goal. CHANOPT_BENCH_KEEP=1 keeps the slim models and
// their reports (the grids' timings, the proof) for study.
func benchRuntime(env *benchEnv) error {
	// CHANOPT_BENCH_THREADS sets ONNX Runtime's threads, for shrink's timings and the table's
	// alike (0 or unset: all cores). One thread has no pool of threads that spin between runs
	// (see ort.SwitchPause), so it times steadily even where sessions alternate quickly.
	threads := 0
	if v := os.Getenv("CHANOPT_BENCH_THREADS"); v != "" {
		if _, err := fmt.Sscan(v, &threads); err != nil || threads < 0 {
			return fmt.Errorf("CHANOPT_BENCH_THREADS=%q: want a thread count", v)
		}
	}
	rt, err := optimizer.NewORTRuntime("", threads)
	if err != nil {
		return err
	}
	bin, dir, err := builtBinary("chanopt-runtime")
	if err != nil {
		return err
	}
	if os.Getenv("CHANOPT_BENCH_KEEP") != "" {
		// The slim models and their reports (the grids' timings, the proof) stay for study.
		fmt.Printf("   slim models and reports kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("   ONNX Runtime %s, %d threads; ratios are slim/original latency timed alternately for ≥ %s, the median of the rounds' ratios [the ratio of medians]; load average %s\n",
		rt.Version(), rt.Threads(), runtimeTiming, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Println("\n   torchvision at 224×224, batch 1:")
	fmt.Println(runtimeHeader)
	zoo := runtimeModels
	if only, ok := os.LookupEnv("CHANOPT_BENCH_ZOO"); ok {
		zoo = strings.FieldsFunc(only, func(r rune) bool { return r == ',' })
	}
	for _, name := range zoo {
		if err := runtimeRow(bin, dir, filepath.Join(env.zoo, name+".onnx"), rt, 1, threads); err != nil {
			fmt.Printf("   | %s | FAILED: %v |\n", name, err)
		}
	}
	fmt.Println("\n   bundled 28×28 models, budgeted and timed at batch 64 (batch 1 after the slash):")
	fmt.Println(runtimeHeader)
	for _, path := range bundledModels(env) {
		if err := runtimeRow(bin, dir, path, rt, 64, threads); err != nil {
			fmt.Printf("   | %s | FAILED: %v |\n", filepath.Base(path), err)
		}
	}
	return nil
}

// runtimeRow shrinks one model both ways, budgeting latency at batch in ONNX Runtime with threads
// (0: all cores), and prints its row: the latency ratios at batch, and when batch > 1 also at
// batch 1.
func runtimeRow(bin, dir, model string, rt optimizer.Runtime, batch, threads int) error {
	name := strings.TrimSuffix(filepath.Base(model), ".onnx")
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
		out, err := exec.Command(bin, "shrink", model, r.budget, "0.5", "--no-distill", "--latency-batch", fmt.Sprint(batch),
			"--threads", fmt.Sprint(threads), "-o", r.slim, "--report", rep).CombinedOutput()
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
	macs := func(r *run) float64 { return float64(r.rep.After.MACs) / float64(r.rep.Before.MACs) }
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
	// The floor is the faster of the smallest cuts that slice: one channel a group can empty an
	// output of a Split the group runs through (resnext), which the grid of 8 does not.
	// One analysis and one channel ranking serve the floors and the random allocations.
	a, err := rewrite.Groups(m)
	if err != nil {
		return err
	}
	imp := optimizer.L1Importance(a)
	var floorErr error
	for _, grid := range []int{1, 8} {
		f, err := smallest(a, imp, grid)
		if err != nil {
			floorErr = err
			continue
		}
		models = append(models, f)
	}
	if len(models) == 3 {
		return fmt.Errorf("floor: %w", floorErr)
	}
	floors := len(models)
	// Random allocations at the --macs result's MACs on its grid, timed in the same rounds.
	cutGrid := 1
	if rr := runs[0].rep.Runtime; rr != nil && rr.RoundTo > 0 {
		cutGrid = rr.RoundTo
	}
	kept := macs(runs[0])
	cuts, err := randomCuts(a, imp, optimizer.AtBatch(m, shapes, batch), cutGrid, kept-0.01, min(0.5, kept+0.01), randomCutCount, 1)
	if err != nil {
		return err
	}
	models = append(models, cuts...)
	if os.Getenv("CHANOPT_BENCH_KEEP") != "" {
		for i, c := range cuts {
			if err := onnx.Save(filepath.Join(dir, fmt.Sprintf("%s-random%d.onnx", name, i)), c, onnx.WriteOptions{}); err != nil {
				return err
			}
		}
	}
	batches := []int{batch}
	if batch > 1 {
		batches = append(batches, 1)
	}
	// Paired ratios (what the grid choice compares), and the ratios of medians.
	ratios := make([][]float64, len(batches))
	medians := make([][]float64, len(batches))
	for i, b := range batches {
		ts, err := optimizer.TimeAlternately(rt, models, optimizer.AtBatch(m, shapes, b), runtimeTiming)
		if err != nil {
			return err
		}
		for j := range ts {
			// Paired round by round, so the machine's drift between rounds cancels; the ratio of
			// the medians beside it in brackets.
			ratios[i] = append(ratios[i], optimizer.PairedRatio(ts[j], ts[0]))
			medians[i] = append(medians[i], float64(ts[j].Median)/float64(ts[0].Median))
		}
	}
	at := func(j int) string {
		s := fmt.Sprintf("%.3f [%.3f]", ratios[0][j], medians[0][j])
		if len(ratios) > 1 {
			s += fmt.Sprintf(" / %.3f [%.3f]", ratios[1][j], medians[1][j])
		}
		return s
	}
	grid := "-"
	if rr := runs[0].rep.Runtime; rr != nil && rr.RoundTo > 0 {
		grid = fmt.Sprint(rr.RoundTo)
	}
	if st := runs[0].rep.SearchStats; st != nil && st.PredictedSpeed > 0 {
		// What the latency table predicted for the widths kept (the speed limit's figure).
		grid += fmt.Sprintf(", predicted %.3f", st.PredictedSpeed)
	}
	if rr := runs[0].rep.Runtime; rr != nil {
		// shrink's own proof: the original and the result alone, alternated (the issue's
		// measurement), where the columns here time them among the floors and random allocations.
		for _, b := range rr.Batches {
			if b.Batch == batch {
				grid += fmt.Sprintf(", proof %.3f", b.Ratio)
			}
		}
	}
	// The bound is what the --macs result would take if the floor's time stayed whole and the rest
	// shrank with the MACs kept: the "floor at half the MACs". The floor model still has
	// a channel or a block in every group, so the bound is a little high for tiny nets.
	floor := slices.Min(ratios[0][3:floors])
	random := slices.Clone(ratios[0][floors:])
	slices.Sort(random)
	fmt.Printf("   | %s | %s (%.3f, %s)%s | %s (%.3f)%s | %.3f (%.3f) | %.3f, %.3f (%d) | %.0f, %.0f |\n", name,
		at(1), macs(runs[0]), grid, runs[0].note, at(2), macs(runs[1]), runs[1].note,
		floor, floor+(1-floor)*macs(runs[0]), random[0], random[len(random)/2], len(random), runs[0].took.Seconds(), runs[1].took.Seconds())
	return nil
}

// smallest is the analysed model with every prunable group at its smallest width on the grid
// (the group's blocks for a grouped conv), keeping the channels of highest importance imp.
func smallest(a *rewrite.Analysis, imp map[rewrite.GroupID][]float64, grid int) (*onnx.Model, error) {
	widths := map[rewrite.GroupID]int{}
	for _, g := range a.Prunable() {
		widths[g.ID] = optimizer.Width(g, 0, grid)
	}
	return a.Slice(optimizer.KeepWidths(a, imp, widths))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// randomCuts are up to k models cut from the analysed model at random allocations of MACs between lo and hi
// (shares of m's: the MACs the search's result keeps, give or take 0.01, never over the budget)
// on the same width grid: each group's share drawn from [0.15, 1], all scaled together to hi and
// rounded to the grid, channels by importance imp. Timed beside the search's result they say whether
// another allocation would have run faster: where none does, what holds a net at its ratio is the
// runtime's speed at narrow widths, not the allocation chosen.
func randomCuts(a *rewrite.Analysis, imp map[rewrite.GroupID][]float64, shapes map[string]onnx.Shape, grid int, lo, hi float64, k int, seed uint64) ([]*onnx.Model, error) {
	nm, err := onnx.NodeMACsAt(a.Model, shapes)
	if err != nil {
		return nil, err
	}
	wc := a.WidthCost(nm)
	base, _ := wc.Eval(nil)
	groups := a.Prunable()
	rng := rand.New(rand.NewPCG(seed, 14))
	var out []*onnx.Model
	for try := 0; try < 40*k && len(out) < k; try++ {
		share := make([]float64, len(groups))
		for i := range share {
			share[i] = 0.15 + 0.85*rng.Float64()
		}
		at := func(s float64) map[rewrite.GroupID]int {
			w := map[rewrite.GroupID]int{}
			for i, g := range groups {
				w[g.ID] = optimizer.Width(g, min(1, s*share[i])*float64(g.Channels), grid)
			}
			return w
		}
		ratio := func(s float64) float64 { c, _ := wc.Eval(at(s)); return c / base }
		small, large := 0.0, 1/slices.Min(share)
		for i := 0; i < 30; i++ {
			if mid := (small + large) / 2; ratio(mid) <= hi {
				small = mid
			} else {
				large = mid
			}
		}
		if r := ratio(small); r > hi || r < lo {
			continue
		}
		slim, err := a.Slice(optimizer.KeepWidths(a, imp, at(small)))
		if err != nil {
			continue // a width that empties a Split's output: draw again
		}
		out = append(out, slim)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no random allocation of %.3f to %.3f of the MACs on the grid of %d", lo, hi, grid)
	}
	return out, nil
}

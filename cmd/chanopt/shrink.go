package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
	"github.com/urfave/cli/v2"
)

// dataFlags are the flags of every command that reads images.
func dataFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data", Usage: "calibration images: IDX (.gz), .npy (N×C×H×W float32), or a folder of PNG/JPEG"},
		&cli.StringFlag{Name: "labels", Usage: "labels for --data (IDX or .npy), to report accuracy"},
		&cli.IntFlag{Name: "samples", Usage: "use only the first N images of --data"},
		&cli.StringFlag{Name: "mean", Usage: "per-channel mean subtracted after scaling to [0,1], e.g. 0.485,0.456,0.406"},
		&cli.StringFlag{Name: "std", Usage: "per-channel std divided after the mean"},
		&cli.IntFlag{Name: "batch", Value: 64, Usage: "images per batch when running the model"},
		&cli.IntFlag{Name: "threads", Usage: "CPU threads (default: all cores)"},
	}
}

func shrinkCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the slim model (default: MODEL with .slim.onnx)"},
		&cli.Float64Flag{Name: "macs", Usage: "keep this fraction of the MACs (0.5 = half)"},
		&cli.Float64Flag{Name: "params", Usage: "keep this fraction of the params"},
		&cli.Float64Flag{Name: "latency", Usage: "keep this fraction of the batch-1 latency measured by chanopt's engine on this machine"},
		&cli.BoolFlag{Name: "no-distill", Usage: "no repair by data or training: slice, then fold each removed channel's mean into the biases of the layers that read it (means from --data, else estimated from the model alone)"},
		&cli.Float64Flag{Name: "epochs", Value: 8, Usage: "epochs of knowledge-distillation fine-tuning on --data (0: repair only); --distill-time may end them sooner"},
		&cli.IntFlag{Name: "synthetic", Value: 512, Usage: "without --data: how many images to synthesise from the original for the repair"},
		&cli.Float64Flag{Name: "lr", Value: 1e-3, Usage: "fine-tuning learning rate (Adam, cosine schedule)"},
		&cli.DurationFlag{Name: "distill-time", Value: 5 * time.Minute, Usage: "fine-tune for at most this long: the learning-rate schedule is fitted to whichever ends first, the epochs or this time (a run ended by time may differ between machines)"},
		&cli.IntFlag{Name: "round-to", Value: 1, Usage: "keep widths multiples of K"},
		&cli.StringFlag{Name: "search", Value: "anneal", Usage: "width search: anneal (metric-guided simulated annealing) or uniform (same fraction everywhere)"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed (same seed and inputs, same output bytes)"},
		&cli.IntFlag{Name: "iterations", Usage: "proposals the annealer makes (default 4000 without --data, 150 with)"},
		&cli.DurationFlag{Name: "search-time", Value: 2 * time.Minute, Usage: "stop the search after this long (a search stopped by time may differ between machines)"},
		&cli.StringFlag{Name: "report", Usage: "write the JSON report to this file"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
		&cli.BoolFlag{Name: "sync", Usage: "fsync the model and report before renaming them into place, so they survive a crash or power loss (output is atomic either way)"},
		inputShapeFlag,
	}
	return &cli.Command{
		Name:      "shrink",
		Usage:     "write a slimmer model that meets a MACs or params budget",
		ArgsUsage: "MODEL",
		Flags:     append(flags, dataFlags()...),
		Action:    shrinkAction,
	}
}

// shrinkReport is the JSON report of `chanopt shrink --report`.
type shrinkReport struct {
	Model       string                   `json:"model"`
	Output      string                   `json:"output"`
	Budget      map[string]float64       `json:"budget"`
	Search      string                   `json:"search"`
	SearchStats map[string]any           `json:"search_stats,omitempty"`
	Before      costReport               `json:"before"`
	After       costReport               `json:"after"`
	Groups      []groupReport            `json:"groups"`
	Distill     *optimizer.DistillReport `json:"distill"`
	// Compensation is set when --no-distill folded the removed channels' means into their consumers.
	Compensation *compensationReport `json:"compensation,omitempty"`
	Accuracy     map[string]any      `json:"accuracy,omitempty"`
}

// compensationReport is what optimizer.Compensate did and where its means came from.
type compensationReport struct {
	optimizer.CompensateReport
	Means string `json:"means"` // "estimated" (without data: BN statistics, N(0,1) after a conv without BN) or "data"
}

type costReport struct {
	Params    int64   `json:"params"`
	MACs      int64   `json:"macs"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

type groupReport struct {
	ID       rewrite.GroupID `json:"id"`
	Channels int             `json:"channels"`
	Kept     int             `json:"kept"`
	Prunable bool            `json:"prunable"`
	Reason   string          `json:"reason,omitempty"`
}

func defaultOutput(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".slim.onnx"
}

// sameFile reports whether two paths name the same existing file.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	bb, _ := filepath.Abs(b)
	return aa == bb
}

// loadData reads --data for a model whose (only) input has the given static shape.
func loadData(c *cli.Context, shape onnx.Shape) (*dataset.Set, error) {
	if len(shape) != 4 {
		return nil, fmt.Errorf("--data feeds images to a model with one N×C×H×W input; this input is %v", shape)
	}
	mean, err := dataset.ParseFloats(c.String("mean"))
	if err != nil {
		return nil, usagef("--mean: %v", err)
	}
	std, err := dataset.ParseFloats(c.String("std"))
	if err != nil {
		return nil, usagef("--std: %v", err)
	}
	return dataset.Load(c.String("data"), c.String("labels"), dataset.Options{
		Channels: int(shape[1].Size), Height: int(shape[2].Size), Width: int(shape[3].Size),
		Samples: c.Int("samples"), Mean: mean, Std: std, Seed: c.Uint64("seed")})
}

func shrinkAction(c *cli.Context) error {
	path, err := modelArg(c)
	if err != nil {
		return err
	}
	var budget optimizer.Budget
	set := 0
	for _, k := range []optimizer.BudgetKind{optimizer.MACs, optimizer.Params, optimizer.Latency} {
		if c.IsSet(string(k)) {
			budget = optimizer.Budget{Kind: k, Ratio: c.Float64(string(k))}
			set++
		}
	}
	if set != 1 {
		return usagef("shrink: give exactly one budget: --macs R, --params R or --latency R")
	}
	if err := budget.Validate(); err != nil {
		return usageError{err.Error()}
	}
	search := c.String("search")
	if search != "uniform" && search != "anneal" {
		return usagef("shrink: --search %q: want anneal or uniform", search)
	}
	if c.IsSet("labels") && !c.IsSet("data") {
		return usagef("shrink: --labels needs --data")
	}
	out := c.String("output")
	if out == "" {
		out = defaultOutput(path)
	}
	if sameFile(path, out) {
		return fmt.Errorf("%s: the output would overwrite the input model; choose another -o", out)
	}
	quiet := c.Bool("quiet")
	logf := func(format string, a ...any) {
		if !quiet {
			fmt.Fprintf(c.App.ErrWriter, "chanopt: "+format+"\n", a...)
		}
	}
	m, err := onnx.Load(path)
	if err != nil {
		return err
	}
	given, err := parseInputShapes(m.Graph, c.StringSlice("input-shape"))
	if err != nil {
		return err
	}
	shapes, err := onnx.BatchOne(m.Graph, given)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	threads, batch := c.Int("threads"), c.Int("batch")
	if batch <= 0 {
		return usagef("--batch must be positive")
	}
	var calib, val *dataset.Set
	if c.IsSet("data") {
		if len(m.Graph.Inputs) != 1 {
			return fmt.Errorf("%s: --data needs a model with one input, this one has %d", path, len(m.Graph.Inputs))
		}
		all, err := loadData(c, shapes[m.Graph.Inputs[0]])
		if err != nil {
			return err
		}
		if all.N < 20 {
			return fmt.Errorf("%s: %d images; chanopt needs at least 20 (some are held back to check the result)", c.String("data"), all.N)
		}
		calib, val = all.Split(0.1, c.Uint64("seed"))
		logf("data: %d images for calibration, %d held back", calib.N, val.N)
	}
	a, err := rewrite.Groups(m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	before, err := optimizer.Measure(m, shapes)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Without data: nothing measured will repair the cut (the data-free repair has only images
	// synthesised from the model), so channels and widths are chosen by what a cut costs once the
	// removed channels' means are compensated: the share of each consumer's output variance lost,
	// from moments estimated without data. With --data, the choice stays as it was (compensation
	// measured no gain before BN recalibration or bias correction: those reset the same means).
	var est map[string]*optimizer.Moments
	var imp map[rewrite.GroupID][]float64
	if calib == nil {
		est = optimizer.EstimateMoments(m, optimizer.MomentOptions{})
		imp = optimizer.ContributionImportance(a, est, optimizer.MomentOptions{})
	}
	var res *optimizer.Result
	var searchStats map[string]any
	switch search {
	case "uniform":
		if budget.Kind == optimizer.Latency {
			return usagef("shrink: --latency needs --search anneal")
		}
		res, err = optimizer.ShrinkUniformBy(a, budget, shapes, c.Int("round-to"), imp)
	case "anneal":
		var sr *optimizer.SearchResult
		layers, lerr := optimizer.LayerMetricsOf(m)
		if lerr != nil {
			return fmt.Errorf("%s: %w", path, lerr)
		}
		sopt := optimizer.SearchOptions{Budget: budget, Inputs: shapes, RoundTo: c.Int("round-to"),
			Seed: c.Uint64("seed"), Iterations: c.Int("iterations"), TimeLimit: c.Duration("search-time"),
			Layers: layers}
		fitness := "weights"
		if calib != nil {
			var ferr error
			if fitness, ferr = sopt.UseData(a, calib, batch, threads); ferr != nil {
				return fmt.Errorf("%s: %w", path, ferr)
			}
		} else if est != nil {
			sopt.Fitness = optimizer.ContributionFitness(a, est, optimizer.MomentOptions{})
			sopt.Importance = imp
			if sopt.Iterations == 0 {
				sopt.Iterations = 4000 // as cheap as the weight-only score
			}
			fitness = "consumer variance lost after mean compensation (data-free)"
		}
		prog := newProgress(c, "search")
		sopt.Progress = prog.update
		var lat *optimizer.LatencyResult
		if budget.Kind == optimizer.Latency {
			lat, err = optimizer.AnnealLatency(a, sopt, threads)
			if lat != nil {
				sr = lat.SearchResult
			}
		} else {
			sr, err = optimizer.Anneal(a, sopt)
		}
		prog.done()
		if lat != nil {
			logf("latency (engine, batch 1): %.3f ms → %.3f ms (%.3f of the original; budget %.3f) after %d search(es)",
				lat.BeforeMS, lat.AfterMS, lat.AfterMS/lat.BeforeMS, budget.Ratio, lat.Attempts)
		}
		if sr != nil {
			res = &sr.Result
			searchStats = map[string]any{"iterations": sr.Iterations, "accepted": sr.Accepts, "evaluations": sr.Evaluations,
				"fitness": sr.Fitness, "fitness_kind": fitness, "stopped_by": sr.Stopped, "seed": c.Uint64("seed")}
			if sr.Confirmation != nil {
				searchStats["finalists"] = sr.Confirmation
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	student := res.Model
	rep := &shrinkReport{Model: path, Output: out, Budget: map[string]float64{string(budget.Kind): budget.Ratio},
		Search: search, SearchStats: searchStats,
		Before: costReport{Params: before.Params, MACs: before.MACs}, After: costReport{Params: res.Costs.Params, MACs: res.Costs.MACs}}
	corr, err := a.Correspond(res.Keep)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case c.Bool("no-distill"):
		mom, means := est, "estimated"
		if calib != nil {
			if mom, err = optimizer.MeasureMoments(m, calib, batch, threads); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			means = "data"
		}
		cr, err := optimizer.Compensate(m, student, corr, mom)
		if err != nil {
			return fmt.Errorf("%s: mean compensation: %w", path, err)
		}
		rep.Distill = &optimizer.DistillReport{Mode: "compensate"}
		rep.Compensation = &compensationReport{CompensateReport: cr, Means: means}
	case calib == nil:
		// Data-free: images synthesised from the original (BN statistics and confident classes).
		in := shapes[m.Graph.Inputs[0]]
		if len(m.Graph.Inputs) != 1 || len(in) != 4 {
			rep.Distill = &optimizer.DistillReport{Mode: "none"}
			logf("no --data, and data-free repair needs one N×C×H×W input: the slim model is not repaired")
			break
		}
		prog := newProgress(c, "synthesise")
		synth, err := optimizer.Synthesize(m, int(in[1].Size), int(in[2].Size), int(in[3].Size), optimizer.SynthesizeOptions{
			Images: c.Int("synthetic"), Threads: threads, Seed: c.Uint64("seed"), Progress: func(d, t int) { prog.update(d, t, 0) }})
		prog.done()
		if err != nil {
			return fmt.Errorf("%s: data-free synthesis: %w", path, err)
		}
		scal, sval := synth.Split(0.2, c.Uint64("seed"))
		cr, err := optimizer.Compensate(m, student, corr, est)
		if err != nil {
			return fmt.Errorf("%s: mean compensation: %w", path, err)
		}
		rep.Compensation = &compensationReport{CompensateReport: cr, Means: "estimated"}
		if rep.Distill, err = distill(c, m, student, corr, scal, sval); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rep.Distill.Mode = "data-free"
		logf("no --data: repaired on %d images synthesised from the original (agreement is measured on synthetic images too)", synth.N)
	default:
		if rep.Distill, err = distill(c, m, student, corr, calib, val); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	for _, g := range a.Groups {
		kept := g.Channels
		if k, ok := res.Keep[g.ID]; ok {
			kept = len(k)
		}
		rep.Groups = append(rep.Groups, groupReport{ID: g.ID, Channels: g.Channels, Kept: kept, Prunable: g.Prunable, Reason: g.Reason})
	}
	if err := onnx.Save(out, student, onnx.WriteOptions{Sync: c.Bool("sync")}); err != nil {
		return err
	}
	if !quiet {
		// Latency is measured (engine, batch 1, this machine) only for the printed table: timings
		// would make the JSON report differ between runs.
		rep.Before.LatencyMS = latencyMS(m, shapes, threads)
		rep.After.LatencyMS = latencyMS(student, shapes, threads)
	}
	if p := c.String("report"); p != "" {
		r := *rep
		r.Before.LatencyMS, r.After.LatencyMS = 0, 0
		if r.Distill != nil {
			d := *r.Distill
			d.Seconds = 0
			d.Stages = append([]optimizer.Stage(nil), d.Stages...)
			for i := range d.Stages {
				d.Stages[i].Seconds = 0
			}
			r.Distill = &d
		}
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := onnx.WriteAtomic(p, append(b, '\n'), c.Bool("sync")); err != nil {
			return err
		}
	}
	if !quiet {
		printShrink(c.App.ErrWriter, rep)
	}
	return nil
}

// distill repairs the student against the original on calibration images, with progress.
func distill(c *cli.Context, teacher, student *onnx.Model, corr map[string]rewrite.Correspondence, calib, val *dataset.Set) (*optimizer.DistillReport, error) {
	prog := newProgress(c, "distill")
	defer prog.done()
	return optimizer.Distill(teacher, student, corr, calib, val, optimizer.DistillOptions{Batch: c.Int("batch"),
		Threads: c.Int("threads"), Seed: c.Uint64("seed"), Epochs: c.Float64("epochs"), LR: c.Float64("lr"),
		MaxTime:  c.Duration("distill-time"),
		Progress: func(stage string, d, t int) { prog.stage = stage; prog.update(d, t, 0) }})
}

// latencyMS is the median batch-1 time in the engine, for the printed table (0 if it cannot run).
func latencyMS(m *onnx.Model, shapes map[string]onnx.Shape, threads int) float64 {
	ms, err := optimizer.MeasureLatency(m, shapes, threads, 700*time.Millisecond)
	if err != nil {
		return 0
	}
	return ms
}

func printShrink(w io.Writer, rep *shrinkReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tbefore\tafter\tratio\t\n")
	row := func(name string, b, a int64) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t\n", name, thousands(b), thousands(a), float64(a)/float64(b))
	}
	row("params", rep.Before.Params, rep.After.Params)
	row("MACs", rep.Before.MACs, rep.After.MACs)
	if rep.Before.LatencyMS > 0 && rep.After.LatencyMS > 0 {
		fmt.Fprintf(tw, "latency (ms, batch 1)\t%.3f\t%.3f\t%.3f\t\n", rep.Before.LatencyMS, rep.After.LatencyMS, rep.After.LatencyMS/rep.Before.LatencyMS)
	}
	if d := rep.Distill; d != nil && len(d.Stages) > 0 {
		last := d.Final()
		if d.Teacher != nil && last.Accuracy != nil {
			fmt.Fprintf(tw, "accuracy (held back)\t%.2f%%\t%.2f%%\t\t\n", 100**d.Teacher, 100**last.Accuracy)
		}
		fmt.Fprintf(tw, "agreement with original\t100%%\t%.2f%%\t\t\n", 100*last.Top1)
	}
	tw.Flush()
	if d := rep.Distill; d != nil && len(d.Stages) > 0 {
		fmt.Fprintf(w, "\nrepair on %d held-back images:\n", d.HeldBack)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range d.Stages {
			note := ""
			if !s.Kept {
				note = "(undone: no better)"
			}
			acc := ""
			if s.Agreement.Accuracy != nil {
				acc = fmt.Sprintf("accuracy %.2f%%", 100**s.Agreement.Accuracy)
			}
			fmt.Fprintf(tw, "  %s\tagreement %.2f%%\tKL %.4f\t%s\t%s\n", s.Name, 100*s.Agreement.Top1, s.Agreement.KL, acc, note)
		}
		tw.Flush()
	}
	shrunk := 0
	for _, g := range rep.Groups {
		if g.Kept < g.Channels {
			shrunk++
		}
	}
	if cr := rep.Compensation; cr != nil {
		fmt.Fprintf(w, "compensated %d removed channels in %d layers (means %s)", cr.Channels, cr.Layers, cr.Means)
		if cr.Skipped > 0 {
			fmt.Fprintf(w, "; %d left without an estimate", cr.Skipped)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d of %d groups shrunk; wrote %s\n", shrunk, len(rep.Groups), rep.Output)
}

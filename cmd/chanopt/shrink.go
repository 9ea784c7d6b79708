package main

import (
	"cmp"
	"encoding/json"
	"errors"
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
	"github.com/chanopt/chanopt/ort"
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
		imageSizeFlag,
	}
}

func shrinkCommand() *cli.Command {
	d := optimizer.DefaultOptions()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the slim model (default: MODEL with .slim.onnx)"},
		&cli.Float64Flag{Name: "macs", Usage: "keep this fraction of the MACs (0.5 = half)"},
		&cli.Float64Flag{Name: "params", Usage: "keep this fraction of the params"},
		&cli.Float64Flag{Name: "latency", Usage: "keep this fraction of the latency measured in --runtime at --latency-batch on this machine"},
		&cli.Float64Flag{Name: "max-drop", Usage: "with --data: the most points of held-back accuracy the slim model may lose (without --labels, a classifier's accuracy is estimated from the original's probabilities, with a margin for the held-back sample; maps and embeddings use their agreement figure); with no budget, the smallest model within it is searched for; with a budget, a model that loses more is not written (exit 1)",
			DefaultText: fmt.Sprintf("%g with no budget, no check with one", optimizer.DefaultMaxDrop)},
		&cli.StringFlag{Name: "runtime", Usage: "where latency is measured: ort (ONNX Runtime, the default when its library is found) or engine (chanopt's own)"},
		&cli.StringFlag{Name: "ort-lib", Usage: "ONNX Runtime's shared library (default: $" + ort.EnvLibrary + ", then the usual places)"},
		&cli.IntFlag{Name: "latency-batch", Value: 1, Usage: "the batch latency is budgeted and judged at (--batch sizes data batches); batch 1 is always reported too"},
		&cli.BoolFlag{Name: "allow-slower", Usage: "exit 0 even when the slim model is not faster than the original in --runtime"},
		&cli.BoolFlag{Name: "no-distill", Usage: "no repair by data or training: slice, then fold each removed channel's mean into the biases of the layers that read it (means from --data, else estimated from the model alone)"},
		&cli.Float64Flag{Name: "epochs", Value: d.Epochs, Usage: "epochs of knowledge-distillation fine-tuning on --data (0: repair only); --distill-time may end them sooner"},
		&cli.BoolFlag{Name: "adapt", Usage: "with --data: move channels between groups during the fine-tuning, under the same budget, by how each group's EVBMF rank changes on the slim model as it trains (CONetV2's adaptive sizing; the report's distill.adapt says what moved)"},
		&cli.IntFlag{Name: "synthetic", Value: d.Synthetic, Usage: "without --data: how many images to synthesise from the original for the repair"},
		&cli.Float64Flag{Name: "lr", Value: d.LR, Usage: "fine-tuning learning rate (Adam, cosine schedule)"},
		&cli.DurationFlag{Name: "time", Value: d.Time, Usage: "bound the whole run (0: no bound): a fifth for the search, a fifth for the statistics repairs and refit, what is left (at most half) for the fine-tuning; stages use fewer images where the model is slow"},
		&cli.DurationFlag{Name: "distill-time", Usage: "fine-tune for at most this long (default: what is left of --time, at most half of it): the learning-rate schedule is fitted to whichever ends first, the epochs or this time (a run ended by time may differ between machines)"},
		&cli.IntFlag{Name: "round-to", Usage: "keep widths multiples of K (unset: the runtime's choice: 1 in the engine; in ONNX Runtime each of 1, 8 and 16 is searched and, the best-judged of those as fast as the budget asks is kept, or the fastest)"},
		&cli.StringFlag{Name: "search", Value: string(d.Search), Usage: "width search: anneal (metric-guided simulated annealing) or uniform (same fraction everywhere)"},
		&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "random seed: the same seed and inputs write the same bytes, unless a time limit or a timing chose (the run then says so, and the report lists it under timing_dependent)"},
		&cli.IntFlag{Name: "iterations", Usage: "proposals the annealer makes (default 4000 without --data, 150 with)"},
		// For reproducing the guidance ablation (models/README.md); not a knob users need.
		&cli.StringFlag{Name: "guide", Hidden: true, Usage: "what biases the annealer's proposals: rank, rank-weighted, qc, mc, sensitivity, reversed or none"},
		&cli.DurationFlag{Name: "search-time", Usage: "stop the search after this long (default: a fifth of --time; a search stopped by time may differ between machines)"},
		&cli.StringFlag{Name: "report", Usage: "write the JSON report to this file (with no budget: OUT with .report.json by default)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
		&cli.StringSliceFlag{Name: "output-kind", Usage: "NAME=KIND: treat graph output NAME as KIND (logits, probabilities, map, embedding), which picks its distillation loss and agreement figures, where the rules that read it from the graph get it wrong (repeatable)"},
		&cli.BoolFlag{Name: "sync", Usage: "fsync the model and report before renaming them into place, so they survive a crash or power loss (output is atomic either way)"},
		inputShapeFlag,
	}
	return &cli.Command{
		Name:      "shrink",
		Usage:     "write a slimmer model: under a MACs, params or latency budget, or with none the smallest within --max-drop on --data (without data, a conservative cut)",
		ArgsUsage: "MODEL",
		Description: "With one budget (--macs, --params or --latency R, the fraction to keep) the slim model meets it.\n" +
			"With none, accuracy comes first: with --data, the smallest model (searching the MACs ratio, at most 5 trials) whose\n" +
			"held-back accuracy stays within --max-drop points (without --labels, estimated from the original's own\n" +
			"probabilities: the mean probability it gives the slim model's answer against its own); without\n" +
			"data, a conservative cut the data-free path has been measured to hold, with a line saying accuracy was\n" +
			"not checked. The report is then written beside the model unless --report names a file.",
		Flags:  append(flags, dataFlags()...),
		Action: shrinkAction,
	}
}

// shrinkReport is the JSON report of `chanopt shrink --report`: the paths, then optimizer's report.
type shrinkReport struct {
	Model  string `json:"model"`
	Output string `json:"output"`
	optimizer.Report
	reportPath string // where the report is written ("": nowhere)
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

// loadData reads --data as images of channels×h×w (h and w 0: the data's own size), checking
// that a --batch of them fits.
func loadData(c *cli.Context, channels, h, w int, progress func(done, total int)) (*dataset.Set, error) {
	checkBatch := func(per int64) error {
		if b := int64(c.Int("batch")); b*per > maxBatchFloats {
			return usagef("--batch %d: batches of %d images of %d values are more than %d values", b, b, per, maxBatchFloats)
		}
		return nil
	}
	if err := checkBatch(int64(channels) * int64(h) * int64(w)); err != nil {
		return nil, err
	}
	mean, err := dataset.ParseFloats(c.String("mean"))
	if err != nil {
		return nil, usagef("--mean: %v", err)
	}
	std, err := dataset.ParseFloats(c.String("std"))
	if err != nil {
		return nil, usagef("--std: %v", err)
	}
	set, err := dataset.Load(c.String("data"), c.String("labels"), dataset.Options{
		Channels: channels, Height: h, Width: w,
		Samples: c.Int("samples"), Mean: mean, Std: std, Seed: c.Uint64("seed"), Progress: progress})
	if err != nil {
		return nil, err
	}
	if err := checkBatch(int64(set.C) * int64(set.H) * int64(set.W)); err != nil {
		return nil, err
	}
	return set, nil
}

// shrinkOptions turns the flags into optimizer.Options: every default is optimizer's, so the CLI,
// the bench and Go users run the same pipeline.
func shrinkOptions(c *cli.Context) (optimizer.Options, error) {
	opt := optimizer.DefaultOptions()
	set := 0
	for _, k := range []optimizer.BudgetKind{optimizer.MACs, optimizer.Params, optimizer.Latency} {
		if c.IsSet(string(k)) {
			opt.Budget = optimizer.Budget{Kind: k, Ratio: c.Float64(string(k))}
			set++
		}
	}
	if set > 1 {
		return opt, usagef("shrink: give at most one budget: --macs R, --params R or --latency R (none: accuracy first)")
	}
	if err := checkShrinkFlags(c); err != nil {
		return opt, err
	}
	if c.IsSet("max-drop") {
		if !c.IsSet("data") {
			return opt, usagef("shrink: --max-drop is measured on held-back images: give --data")
		}
		opt.MaxDrop = c.Float64("max-drop")
	}
	if c.IsSet("search") {
		opt.Search = optimizer.SearchKind(c.String("search"))
	}
	if c.IsSet("guide") {
		g, err := optimizer.ParseGuide(c.String("guide"))
		if err != nil {
			return opt, usagef("shrink: --%v", err)
		}
		if g == optimizer.GuideSensitivity && !c.IsSet("data") {
			return opt, usagef("shrink: --guide sensitivity measures each group on calibration images: give --data")
		}
		opt.Guide = g
	}
	if c.Bool("no-distill") {
		opt.Repair = optimizer.RepairCompensate
	}
	if c.Bool("adapt") {
		if !c.IsSet("data") {
			return opt, usagef("shrink: --adapt measures the slim model as it trains on calibration images: give --data")
		}
		opt.Adapt = true
	}
	for name, dst := range map[string]*int{"round-to": &opt.RoundTo, "iterations": &opt.Iterations,
		"synthetic": &opt.Synthetic, "batch": &opt.Batch, "threads": &opt.Threads} {
		if c.IsSet(name) {
			*dst = c.Int(name)
		}
	}
	for name, dst := range map[string]*float64{"epochs": &opt.Epochs, "lr": &opt.LR} {
		if c.IsSet(name) {
			*dst = c.Float64(name)
		}
	}
	for name, dst := range map[string]*time.Duration{"time": &opt.Time, "search-time": &opt.SearchTime, "distill-time": &opt.DistillTime} {
		if c.IsSet(name) {
			*dst = c.Duration(name)
		}
	}
	if c.IsSet("seed") {
		opt.Seed = c.Uint64("seed")
	}
	for _, s := range c.StringSlice("output-kind") {
		name, kind, ok := strings.Cut(s, "=")
		k, err := optimizer.ParseOutputKind(kind)
		if !ok || name == "" || err != nil {
			return opt, usagef("--output-kind %q: want NAME=KIND with KIND one of logits, probabilities, map, embedding", s)
		}
		if opt.OutputKinds == nil {
			opt.OutputKinds = map[string]optimizer.OutputKind{}
		}
		opt.OutputKinds[name] = k
	}
	if opt.LatencyBatch = c.Int("latency-batch"); opt.LatencyBatch <= 0 || opt.LatencyBatch > maxBatch {
		return opt, usagef("--latency-batch %d: want 1 to %d", opt.LatencyBatch, maxBatch)
	}
	if err := opt.Validate(); err != nil {
		return opt, usagef("shrink: %v", err)
	}
	return opt, nil
}

// checkShrinkFlags checks every numeric flag of shrink that is set: ranges, NaN and infinities.
// Zero means "the default" only where the flag is unset.
func checkShrinkFlags(c *cli.Context) error {
	if err := checkDataFlags(c); err != nil {
		return err
	}
	if err := checkIntFlags(c, map[string][2]int{"round-to": {1, maxRoundTo}, "iterations": {1, maxIterations},
		"synthetic": {1, maxSynthetic}}); err != nil {
		return err
	}
	for _, k := range []string{"macs", "params", "latency"} {
		if err := checkFloatFlag(c, k, 0, 1, true); err != nil {
			return err
		}
	}
	if err := checkFloatFlag(c, "max-drop", 0, 100, true); err != nil {
		return err
	}
	if err := checkFloatFlag(c, "epochs", 0, maxEpochs, false); err != nil {
		return err
	}
	if err := checkFloatFlag(c, "lr", 0, 1, true); err != nil {
		return err
	}
	// --time 0 lifts the bound (the library's Time 0); 0 for a stage's cap would read as its
	// default share, which leaving the flag out already says.
	for _, f := range [][2]string{{"time", "no bound"}, {"search-time", ""}, {"distill-time", ""}} {
		if err := checkDurationFlag(c, f[0], f[1]); err != nil {
			return err
		}
	}
	return nil
}

func shrinkAction(c *cli.Context) error {
	path, err := modelArg(c)
	if err != nil {
		return err
	}
	opt, err := shrinkOptions(c)
	if err != nil {
		return err
	}
	out := c.String("output")
	if out == "" {
		out = defaultOutput(path)
	}
	if sameFile(path, out) {
		return fmt.Errorf("-o %s: would overwrite the model; chanopt never overwrites its inputs", out)
	}
	quiet := c.Bool("quiet")
	rt, missing, err := shrinkRuntime(c.String("runtime"), c.String("ort-lib"), opt.Threads)
	if err != nil {
		return err
	}
	opt.Runtime = rt
	m, err := onnx.Load(path)
	if err != nil {
		return err
	}
	// Every output is checked against every input before any work.
	plan := newPlan(c)
	plan.inputModel(path, m)
	plan.input("--data", c.String("data"))
	plan.input("--labels", c.String("labels"))
	if err := plan.output("-o", out); err != nil {
		return err
	}
	report := c.String("report")
	if report == "" && opt.Budget.Ratio == 0 {
		// A run that chooses its own budget leaves the record of how beside the model.
		report = strings.TrimSuffix(out, filepath.Ext(out)) + ".report.json"
	}
	if report != "" {
		if err := plan.output("--report", report); err != nil {
			return err
		}
	}
	given, err := parseInputShapes(m.Graph, c.StringSlice("input-shape"))
	if err != nil {
		return err
	}
	if !c.IsSet("data") {
		// With --data the images' size fixes what the model leaves symbolic (loadModelData).
		if opt.Inputs, err = onnx.BatchOne(m.Graph, given); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := checkSynthetic(c, m, opt); err != nil {
			return err
		}
	}
	// A model whose batch is fixed at 1 runs on batches through a copy with a symbolic batch; the
	// file written keeps the fixed dim.
	work, fixed := m, (*fixedBatch)(nil)
	prog := newStages(c)
	defer prog.finish()
	if c.IsSet("data") {
		// A folder of photos takes a while to decode: its stage begins with the first image (files
		// load at once, and an error in them stays the only line).
		decoding := func(d, t int) {
			if d == 1 {
				prog.Stage("data", fmt.Sprintf("decoding the %d images of %s", t, c.String("data")))
			}
			prog.Step(d, t, 0)
		}
		if opt.Inputs, opt.Data, err = loadModelData(c, path, m, given, decoding); err != nil {
			return err
		}
		if opt.Data.N < optimizer.MinImages {
			return fmt.Errorf("%s: %d images; chanopt needs at least %d (some are held back to check the result)",
				c.String("data"), opt.Data.N, optimizer.MinImages)
		}
		if err := checkLabels(c, m, opt.Inputs, opt.Data); err != nil {
			return err
		}
	}
	if opt.Repair == optimizer.RepairDistill || opt.Data != nil {
		if work, fixed, err = relaxBatch(path, m); err != nil {
			return err
		}
	}
	opt.Progress = prog
	if missing != "" {
		// Said once the inputs have passed their checks, so that an error stays the only line.
		prog.Note("measuring latency in chanopt's engine: " + missing)
	}
	res, err := optimizer.Shrink(c.Context, work, opt)
	var oe *optimizer.OptionsError
	switch {
	case errors.As(err, &oe):
		return usagef("shrink: %v", oe)
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	}
	prog.Stage("write", "writing the outputs")
	fixed.restore(res.Model)
	rep := &shrinkReport{Model: path, Output: out, Report: res.Report, reportPath: report}
	if err := plan.setModel(out, res.Model); err != nil {
		return err
	}
	if r := rep.Runtime; r != nil && len(r.Batches) > 0 {
		last := r.Batches[len(r.Batches)-1]
		rep.Before.LatencyMS, rep.After.LatencyMS = last.BeforeMS, last.AfterMS
	}
	if report != "" {
		// The file keeps what the run did, its timings and measured latencies included (the
		// sections that differ between two runs with the same seed).
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		plan.set(report, append(b, '\n'))
	}
	if err := plan.commit(c.Bool("sync")); err != nil {
		return err
	}
	if !quiet {
		printShrink(c.App.ErrWriter, rep)
	}
	if r := rep.Runtime; r != nil && r.OverBudget && !r.Slower {
		last := r.Batches[len(r.Batches)-1]
		fmt.Fprintf(c.App.ErrWriter, "chanopt: %s: the latency budget was not met: %.3f ms against %.3f ms in %s at batch %d, %.3f of the original for %.3g asked (timings vary with the machine's load; a smaller --latency finds a faster model)\n",
			out, last.AfterMS, last.BeforeMS, r.Runtime, last.Batch, last.Ratio, rep.Budget["latency"])
	}
	if r := rep.Runtime; r != nil && r.Slower {
		last := r.Batches[len(r.Batches)-1]
		msg := fmt.Sprintf("%s: SLOWER: the slim model is not faster than the original in %s at batch %d (%.3f ms vs %.3f ms); it was written",
			out, r.Runtime, last.Batch, last.AfterMS, last.BeforeMS)
		if !c.Bool("allow-slower") && rep.Target == nil {
			hint := "try --round-to 8 or 16, or a --latency budget"
			if len(r.Grids) > 0 {
				hint = "no width grid made it faster: try a smaller budget, or a --latency budget"
			}
			return fmt.Errorf("%s, but --allow-slower was not given (%s)", msg, hint)
		}
		why := "--allow-slower"
		if rep.Target != nil {
			why = "no budget was given, so no speed was promised"
		}
		fmt.Fprintf(c.App.ErrWriter, "chanopt: %s (%s)\n", msg, why)
	}
	return nil
}

// maxSyntheticFloats bounds the images synthesised without data (4 GiB of float32).
const maxSyntheticFloats = 1 << 30

// checkSynthetic refuses a --synthetic count whose images would not fit in memory, before the
// search runs.
func checkSynthetic(c *cli.Context, m *onnx.Model, opt optimizer.Options) error {
	if c.IsSet("data") || opt.Repair != optimizer.RepairDistill || len(m.Graph.Inputs) != 1 {
		return nil
	}
	in := opt.Inputs[m.Graph.Inputs[0]]
	per := int64(1)
	for _, d := range in[min(1, len(in)):] {
		per *= max(d.Size, 1)
	}
	n := int64(cmp.Or(opt.Synthetic, optimizer.DefaultOptions().Synthetic))
	if n*per > maxSyntheticFloats {
		return usagef("--synthetic %d: %d images of %d values are more than %d values", n, n, per, maxSyntheticFloats)
	}
	return nil
}

// shrinkRuntime resolves --runtime: ONNX Runtime when asked for or, by default, when its library
// is found (missing then says why it was not); else the engine. Asking for ort explicitly without
// a library is an error.
func shrinkRuntime(flag, lib string, threads int) (rt optimizer.Runtime, missing string, err error) {
	switch flag {
	case "":
		rt, why := optimizer.DefaultRuntime(lib, threads)
		return rt, why, nil
	case runtimeEngine:
		return optimizer.EngineRuntime{NumThreads: threads}, "", nil
	case runtimeORT:
		r, err := optimizer.NewORTRuntime(lib, threads)
		if err != nil {
			return nil, "", fmt.Errorf("--runtime ort: %w", err)
		}
		return r, "", nil
	}
	return nil, "", usagef("--runtime %q: want ort or engine", flag)
}

// describeAdapt is one line on what the adaptive sizing did.
func describeAdapt(a *optimizer.AdaptReport) string {
	s := fmt.Sprintf("adaptive sizing: %d of %d measurements made", a.Measured, a.Points)
	if len(a.Reallocations) == 0 {
		return s + "; no group's width moved"
	}
	var parts []string
	for _, r := range a.Reallocations {
		var ch []string
		for _, g := range r.Groups {
			ch = append(ch, fmt.Sprintf("group %d %d→%d", g.ID, g.Before, g.After))
		}
		parts = append(parts, fmt.Sprintf("epoch %.2f: %s", r.Epoch, strings.Join(ch, ", ")))
	}
	kept := "the widths the search chose (the reallocated students judged no better)"
	if a.KeptAfter > 0 {
		kept = fmt.Sprintf("the widths after reallocation %d", a.KeptAfter)
	}
	return fmt.Sprintf("%s; %d reallocations (%s); kept %s", s, len(a.Reallocations), strings.Join(parts, "; "), kept)
}

func printShrink(w io.Writer, rep *shrinkReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tbefore\tafter\tratio\t\n")
	row := func(name string, b, a int64) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t\n", name, thousands(b), thousands(a), float64(a)/float64(b))
	}
	row("params", rep.Before.Params, rep.After.Params)
	row("MACs", rep.Before.MACs, rep.After.MACs)
	if r := rep.Runtime; r != nil {
		for _, b := range r.Batches {
			fmt.Fprintf(tw, "latency (ms, batch %d)\t%.3f ± %.3f\t%.3f ± %.3f\t%.3f\t\n", b.Batch, b.BeforeMS, b.BeforeSpreadMS,
				b.AfterMS, b.AfterSpreadMS, b.Ratio)
		}
	}
	if d := rep.Distill; d != nil && len(d.Stages) > 0 {
		last := d.Final()
		if d.Teacher != nil && last.Accuracy != nil {
			fmt.Fprintf(tw, "accuracy (held back)\t%.2f%%\t%.2f%%\t\t\n", 100**d.Teacher, 100**last.Accuracy)
		}
		if singleClassifier(last) {
			fmt.Fprintf(tw, "agreement with original\t100%%\t%.2f%%\t\t\n", 100*last.Top1)
		}
		for _, o := range last.Outputs {
			if !singleClassifier(last) {
				fmt.Fprintf(tw, "%s %s (%s) with original\t100%%\t%.2f%%\t\t\n", o.Name, figureName(o), o.Kind, 100*o.Figure())
			}
		}
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
			if singleClassifier(s.Agreement) {
				fmt.Fprintf(tw, "  %s\tagreement %.2f%%\tKL %.4f\t%s\t%s\n", s.Name, 100*s.Agreement.Top1, s.Agreement.KL, acc, note)
				continue
			}
			var figs []string
			for _, o := range s.Agreement.Outputs {
				figs = append(figs, outputFigures(o))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, strings.Join(figs, "; "), acc, note)
		}
		tw.Flush()
		if a := d.Adapt; a != nil {
			fmt.Fprintln(w, describeAdapt(a))
		}
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
	if r := rep.Runtime; r != nil {
		name := r.Runtime
		if r.Version != "" {
			name += " " + r.Version
		}
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "latency in %s not measured: %s\n", name, r.Error)
		case len(r.Batches) > 0:
			var sp []string
			for _, b := range r.Batches {
				sp = append(sp, fmt.Sprintf("%.2f× at batch %d", b.Speedup, b.Batch))
			}
			fmt.Fprintf(w, "speedup in %s (%d threads, original and slim timed alternately in rounds, %d runs each; the median of the rounds' ratios): %s\n",
				name, r.Threads, r.Batches[0].Runs, strings.Join(sp, ", "))
		}
	}
	fmt.Fprintf(w, "%d of %d groups shrunk; wrote %s\n", shrunk, len(rep.Groups), rep.Output)
	if len(rep.TimingDependent) > 0 {
		fmt.Fprintf(w, "not repeatable: %s, so the same --seed may write other bytes on another run (with a MACs or params budget, --time 0 and --round-to K take the timing out of the choices)\n",
			strings.Join(rep.TimingDependent, "; "))
	}
	printTarget(w, rep)
	if rep.Report.Target != nil && rep.reportPath != "" {
		fmt.Fprintf(w, "report: %s\n", rep.reportPath)
	}
}

// printTarget says how the budget was chosen when none was given: every ratio tried with the
// held-back figure judged (the drop with its margin, when the figure is an estimate) and the
// top-1 agreement beside it.
func printTarget(w io.Writer, rep *shrinkReport) {
	t := rep.Target
	if t == nil {
		return
	}
	if !t.Checked {
		fmt.Fprintf(w, "no budget and no --data: kept %.2f of the MACs, a cut the data-free path held within about a point on the bundled models.\n", t.Ratio)
		fmt.Fprintf(w, "Accuracy was not checked: `chanopt shrink %s --data IMAGES` checks it on held-back images and finds the smallest model within --max-drop (default %g point).\n",
			rep.Model, optimizer.DefaultMaxDrop)
		return
	}
	fmt.Fprintf(w, "no budget: the smallest %s ratio within %.2g points of held-back %s; the ratios tried:\n", t.Kind, t.MaxDrop, t.Figure)
	estimated := t.Figure == optimizer.FigureEstimated || t.Figure == optimizer.FigureMixed
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s ratio\tMACs kept\theld-back figure\tdrop (points)\t\ttop-1 agreement\tseconds\n", t.Kind)
	for _, tr := range t.Trials {
		if tr.Error != "" {
			fmt.Fprintf(tw, "  %.3g\t\t\t\tfailed: %s\t\t%.0f\n", tr.Ratio, tr.Error, tr.Seconds)
			continue
		}
		verdict := "too much"
		switch {
		case tr.Within && tr.Ratio == t.Ratio:
			verdict = "within: kept"
		case tr.Within:
			verdict = "within"
		}
		drop := fmt.Sprintf("%.2f", tr.Drop)
		if tr.Margin > 0 {
			drop = fmt.Sprintf("%.2f (%.2f + margin %.2f)", tr.Drop, tr.Reference-tr.Figure, tr.Margin)
		}
		top1 := ""
		if tr.Top1 > 0 {
			top1 = fmt.Sprintf("%.2f%%", tr.Top1)
		}
		fmt.Fprintf(tw, "  %.3g\t%.3f\t%.2f%% (original %.2f%%)\t%s\t%s\t%s\t%.0f\n", tr.Ratio, tr.MACsRatio, tr.Figure, tr.Reference, drop, verdict, top1, tr.Seconds)
	}
	tw.Flush()
	if estimated {
		fmt.Fprintf(w, "The figure needs no labels: an answer's chance of being right is taken as the probability the original gives it, so the original's figure is its mean top probability and a slim model's the mean probability the original gives the slim model's answer. The margin adds %.0f%% of the estimated drop for an original less confident than it is right, and %g standard errors for the held-back sample. --labels measures accuracy instead.\n",
			100*optimizer.CalibrationAllowance, optimizer.DropMarginZ)
	}
}

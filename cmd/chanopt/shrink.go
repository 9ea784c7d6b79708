package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
	"github.com/urfave/cli/v2"
)

func shrinkCommand() *cli.Command {
	return &cli.Command{
		Name:      "shrink",
		Usage:     "write a slimmer model that meets a MACs or params budget",
		ArgsUsage: "MODEL",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the slim model (default: MODEL with .slim.onnx)"},
			&cli.Float64Flag{Name: "macs", Usage: "keep this fraction of the MACs (0.5 = half)"},
			&cli.Float64Flag{Name: "params", Usage: "keep this fraction of the params"},
			&cli.BoolFlag{Name: "no-distill", Usage: "slice only: no repair or fine-tuning"},
			&cli.IntFlag{Name: "round-to", Value: 1, Usage: "keep widths multiples of K"},
			&cli.StringFlag{Name: "search", Value: "uniform", Usage: "width search: uniform"},
			&cli.StringFlag{Name: "report", Usage: "write the JSON report to this file"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
			inputShapeFlag,
		},
		Action: shrinkAction,
	}
}

// shrinkReport is the JSON report of `chanopt shrink --report`.
type shrinkReport struct {
	Model   string             `json:"model"`
	Output  string             `json:"output"`
	Budget  map[string]float64 `json:"budget"`
	Search  string             `json:"search"`
	Before  optimizer.Costs    `json:"before"`
	After   optimizer.Costs    `json:"after"`
	Groups  []groupReport      `json:"groups"`
	Distill map[string]any     `json:"distill"`
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

func shrinkAction(c *cli.Context) error {
	path, err := modelArg(c)
	if err != nil {
		return err
	}
	var budget optimizer.Budget
	set := 0
	for _, k := range []optimizer.BudgetKind{optimizer.MACs, optimizer.Params} {
		if c.IsSet(string(k)) {
			budget = optimizer.Budget{Kind: k, Ratio: c.Float64(string(k))}
			set++
		}
	}
	if set != 1 {
		return usagef("shrink: give exactly one budget: --macs R or --params R")
	}
	if err := budget.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if c.String("search") != "uniform" {
		return usagef("shrink: --search %q is not available; use uniform", c.String("search"))
	}
	if !c.Bool("no-distill") {
		return usagef("shrink: distillation is not available in this build yet; pass --no-distill to slice only")
	}
	out := c.String("output")
	if out == "" {
		out = defaultOutput(path)
	}
	if sameFile(path, out) {
		return fmt.Errorf("%s: the output would overwrite the input model; choose another -o", out)
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
	a, err := rewrite.Groups(m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	before, err := optimizer.Measure(m, shapes)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	res, err := optimizer.ShrinkUniform(a, budget, shapes, c.Int("round-to"))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := onnx.Save(out, res.Model, onnx.WriteOptions{}); err != nil {
		return err
	}
	rep := &shrinkReport{Model: path, Output: out, Budget: map[string]float64{string(budget.Kind): budget.Ratio},
		Search: "uniform", Before: before, After: res.Costs, Distill: map[string]any{"mode": "none"}}
	for _, g := range a.Groups {
		kept := g.Channels
		if k, ok := res.Keep[g.ID]; ok {
			kept = len(k)
		}
		rep.Groups = append(rep.Groups, groupReport{ID: g.ID, Channels: g.Channels, Kept: kept, Prunable: g.Prunable, Reason: g.Reason})
	}
	if p := c.String("report"); p != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileAtomic(p, append(b, '\n')); err != nil {
			return err
		}
	}
	if !c.Bool("quiet") {
		printShrink(c.App.ErrWriter, rep)
	}
	return nil
}

func printShrink(w io.Writer, rep *shrinkReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tbefore\tafter\tratio\t\n")
	row := func(name string, b, a int64) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t\n", name, thousands(b), thousands(a), float64(a)/float64(b))
	}
	row("params", rep.Before.Params, rep.After.Params)
	row("MACs", rep.Before.MACs, rep.After.MACs)
	tw.Flush()
	shrunk := 0
	for _, g := range rep.Groups {
		if g.Kept < g.Channels {
			shrunk++
		}
	}
	fmt.Fprintf(w, "%d of %d groups shrunk; wrote %s\n", shrunk, len(rep.Groups), rep.Output)
}

// writeFileAtomic writes through a temp file in the same folder and a rename.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

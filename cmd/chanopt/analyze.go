package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
	"github.com/urfave/cli/v2"
)

func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:      "analyze",
		Usage:     "CONet low-rank metrics per layer and group; with --data, each group's measured sensitivity",
		ArgsUsage: "MODEL",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "plot", Usage: "write a chart of channels and ranks per layer (FILE.svg or FILE.html)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for sampling image folders"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines"},
			inputShapeFlag,
		}, dataFlags()...),
		Action: analyzeAction,
	}
}

// r6 rounds to 6 decimals so reports are stable and readable.
func r6(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e6) / 1e6
}

type layerReport struct {
	Name        string  `json:"name"`
	Op          string  `json:"op"`
	InChannels  int     `json:"in_channels"`
	OutChannels int     `json:"out_channels"`
	RankIn      float64 `json:"rank_in"`
	RankOut     float64 `json:"rank_out"`
	KGIn        float64 `json:"kg_in"`
	KGOut       float64 `json:"kg_out"`
	MCIn        float64 `json:"mc_in"`
	MCOut       float64 `json:"mc_out"`
	QC          float64 `json:"qc"`
	Params      int64   `json:"params"`
	MACs        int64   `json:"macs"`
	Pinned      bool    `json:"pinned"`
}

type groupScoreReport struct {
	ID          rewrite.GroupID `json:"id"`
	Channels    int             `json:"channels"`
	Prunable    bool            `json:"prunable"`
	Score       float64         `json:"score"` // mean rank of the layer sides touching the group
	KG          float64         `json:"kg"`
	MC          float64         `json:"mc"`
	QC          float64         `json:"qc"`
	Sensitivity *float64        `json:"sensitivity,omitempty"`
}

type analyzeReport struct {
	Model       string              `json:"model"`
	Layers      []layerReport       `json:"layers"`
	Groups      []groupScoreReport  `json:"groups"`
	Correlation map[string]*float64 `json:"correlation,omitempty"`
	Images      int                 `json:"images,omitempty"`
}

func analyzeAction(c *cli.Context) error {
	path, err := modelArg(c)
	if err != nil {
		return err
	}
	plot := c.String("plot")
	if plot != "" && !strings.HasSuffix(plot, ".svg") && !strings.HasSuffix(plot, ".html") {
		return usagef("analyze: --plot wants FILE.svg or FILE.html, got %q", plot)
	}
	if err := checkDataFlags(c); err != nil {
		return err
	}
	m, err := onnx.Load(path)
	if err != nil {
		return err
	}
	plan := newPlan(c)
	if plot != "" {
		plan.inputModel(path, m)
		plan.input("--data", c.String("data"))
		plan.input("--labels", c.String("labels"))
		if err := plan.output("--plot", plot); err != nil {
			return err
		}
	}
	given, err := parseInputShapes(m.Graph, c.StringSlice("input-shape"))
	if err != nil {
		return err
	}
	shapes, shapesErr := onnx.BatchOne(m.Graph, given)
	var set *dataset.Set
	if c.IsSet("data") {
		// The images fix the dims the model leaves symbolic, for the MACs as for the sensitivity.
		if shapes, set, err = loadModelData(c, path, m, given, nil); err != nil {
			return err
		}
		shapesErr = nil
	}
	a, err := rewrite.Groups(m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	layers, err := optimizer.LayerMetricsOf(m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rep := &analyzeReport{Model: path, Layers: []layerReport{}}
	// Params and MACs per node need static shapes; without them the layer table still has metrics.
	macs := map[string]int64{}
	if shapesErr == nil {
		tmp := m.Clone()
		if _, err := onnx.InferShapes(tmp, onnx.InferOptions{Inputs: shapes, Lenient: true}); err == nil {
			for _, n := range tmp.Graph.Nodes {
				if v, err := onnx.NodeMACs(tmp.Graph, n); err == nil {
					macs[n.Label()] = v
				}
			}
		}
	}
	pinned := map[string]bool{}
	for _, g := range a.Groups {
		if !g.Prunable {
			for _, p := range g.Producers {
				pinned[p] = true
			}
		}
	}
	params := map[string]int64{}
	for _, n := range m.Graph.Nodes {
		params[n.Label()] += onnx.NodeParams(m.Graph, n)
	}
	for _, l := range layers {
		rep.Layers = append(rep.Layers, layerReport{Name: l.Name, Op: l.Op, InChannels: l.InChannels, OutChannels: l.OutChannels,
			RankIn: r6(l.RankIn), RankOut: r6(l.RankOut), KGIn: r6(l.KGIn), KGOut: r6(l.KGOut), MCIn: r6(l.MCIn), MCOut: r6(l.MCOut),
			QC: r6(l.QC), Params: params[l.Name], MACs: macs[l.Name], Pinned: pinned[l.Name]})
	}
	scores := optimizer.GroupScores(a, layers)
	for _, g := range a.Groups {
		s := scores[g.ID]
		rep.Groups = append(rep.Groups, groupScoreReport{ID: g.ID, Channels: g.Channels, Prunable: g.Prunable,
			Score: r6(s.Rank), KG: r6(s.KG), MC: r6(s.MC), QC: r6(s.QC)})
	}
	if c.IsSet("data") {
		if err := checkLabels(c, m, shapes, set); err != nil {
			return err
		}
		set = set.Head(256)
		// A model with its batch fixed at 1 is measured through a copy with a symbolic batch.
		work, _, err := relaxBatch(path, m)
		if err != nil {
			return err
		}
		wa := a
		if work != m {
			if wa, err = rewrite.Groups(work); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		prog := newProgress(c, "sensitivity")
		sens, err := optimizer.Sensitivities(wa, set, c.Int("batch"), c.Int("threads"), func(d, t int) { prog.update(d, t, 0) })
		prog.done()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rep.Images = set.N
		byID := map[rewrite.GroupID]float64{}
		for _, s := range sens {
			byID[s.ID] = s.Drop
		}
		var xs [4][]float64
		var ys []float64
		for i := range rep.Groups {
			g := &rep.Groups[i]
			d, ok := byID[g.ID]
			if !ok {
				continue
			}
			v := r6(d)
			g.Sensitivity = &v
			if scores[g.ID].Sides == 0 {
				continue
			}
			s := scores[g.ID]
			for k, x := range []float64{s.Rank, s.KG, s.MC, s.QC} {
				xs[k] = append(xs[k], x)
			}
			ys = append(ys, d)
		}
		rep.Correlation = map[string]*float64{}
		for k, name := range []string{"rank", "kg", "mc", "qc"} {
			if r := optimizer.Spearman(xs[k], ys); !math.IsNaN(r) {
				v := r6(r)
				rep.Correlation[name] = &v
			} else {
				rep.Correlation[name] = nil
			}
		}
	}
	if plot != "" {
		plan.set(plot, plotBytes(plot, rep))
		if err := plan.commit(false); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printAnalyze(c.App.Writer, rep)
	return nil
}

func printAnalyze(w io.Writer, rep *analyzeReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "layer\top\tin\tout\trank in\trank out\tKG in\tKG out\tMC in\tMC out\tQC\tparams\tMACs\t\n")
	for _, l := range rep.Layers {
		name := l.Name
		if l.Pinned {
			name += " (pinned)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t%.2f\t%.3f\t%s\t%s\t\n", name, l.Op, l.InChannels, l.OutChannels,
			l.RankIn, l.RankOut, l.KGIn, l.KGOut, l.MCIn, l.MCOut, l.QC, thousands(l.Params), thousands(l.MACs))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "group\tchannels\tstate\trank\tKG\tMC\tQC\tsensitivity\t\n")
	for _, g := range rep.Groups {
		state := "prunable"
		if !g.Prunable {
			state = "pinned"
		}
		sens := "-"
		if g.Sensitivity != nil {
			sens = fmt.Sprintf("%.3f", *g.Sensitivity)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.3f\t%.3f\t%.2f\t%.3f\t%s\t\n", g.ID, g.Channels, state, g.Score, g.KG, g.MC, g.QC, sens)
	}
	tw.Flush()
	if rep.Correlation != nil {
		fmt.Fprintf(w, "\nSpearman correlation of each metric with the measured sensitivity (%d images):\n", rep.Images)
		for _, k := range []string{"rank", "kg", "mc", "qc"} {
			if v := rep.Correlation[k]; v != nil {
				fmt.Fprintf(w, "  %-4s %+.3f\n", k, *v)
			} else {
				fmt.Fprintf(w, "  %-4s n/a (too few groups)\n", k)
			}
		}
	}
}

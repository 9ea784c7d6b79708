package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/urfave/cli/v2"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "measure accuracy on labelled data and/or agreement with a teacher model",
		ArgsUsage: "MODEL",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "teacher", Usage: "the original model, to measure agreement with it by output kind (top-1 and KL for classifiers, IoU and MAE for maps, cosine for embeddings)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for sampling image folders"},
			inputShapeFlag,
		}, dataFlags()...),
		Action: evalAction,
	}
}

type evalReport struct {
	Model    string               `json:"model"`
	Teacher  string               `json:"teacher,omitempty"`
	Images   int                  `json:"images"`
	Accuracy *float64             `json:"accuracy,omitempty"`
	Agree    *optimizer.Agreement `json:"agreement,omitempty"`
}

func evalAction(c *cli.Context) error {
	path, err := modelArg(c)
	if err != nil {
		return err
	}
	if !c.IsSet("data") {
		return usagef("eval: --data is required")
	}
	if !c.IsSet("labels") && !c.IsSet("teacher") {
		return usagef("eval: give --labels (accuracy) or --teacher (agreement), or both")
	}
	if err := checkDataFlags(c); err != nil {
		return err
	}
	m, err := onnx.Load(path)
	if err != nil {
		return err
	}
	if len(m.Graph.Inputs) != 1 {
		return fmt.Errorf("%s: eval feeds images to a model with one input, this one has %d", path, len(m.Graph.Inputs))
	}
	given, err := parseInputShapes(m.Graph, c.StringSlice("input-shape"))
	if err != nil {
		return err
	}
	shapes, set, err := loadModelData(c, path, m, given, nil)
	if err != nil {
		return err
	}
	if err := checkLabels(c, m, shapes, set); err != nil {
		return err
	}
	outputsOf := func(mm *onnx.Model, p string) (*optimizer.Outputs, error) {
		// A model with its batch fixed at 1 runs through a copy with a symbolic batch.
		mm, _, err := relaxBatch(p, mm)
		if err != nil {
			return nil, err
		}
		prog, err := engine.Compile(mm, engine.Options{Threads: c.Int("threads")})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		defer prog.Close()
		out, err := optimizer.RunOutputs(prog, mm, set, c.Int("batch"), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return out, nil
	}
	out, err := outputsOf(m, path)
	if err != nil {
		return err
	}
	if err := out.CheckLabels(set); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rep := evalReport{Model: path, Images: set.N}
	if set.Labels != nil {
		a, err := optimizer.CompareOutputs(out, out, set.Labels)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rep.Accuracy = a.Accuracy
	}
	if t := c.String("teacher"); t != "" {
		tm, err := onnx.Load(t)
		if err != nil {
			return err
		}
		tout, err := outputsOf(tm, t)
		if err != nil {
			return err
		}
		a, err := optimizer.CompareOutputs(tout, out, set.Labels)
		if err != nil {
			return fmt.Errorf("%s against %s: %w", path, t, err)
		}
		rep.Teacher, rep.Agree = t, &a
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\nimages\t%d\n", path, set.N)
	if rep.Accuracy != nil {
		fmt.Fprintf(tw, "accuracy\t%.2f%%\n", 100**rep.Accuracy)
	}
	if rep.Agree != nil {
		if rep.Agree.Teacher != nil {
			fmt.Fprintf(tw, "teacher accuracy\t%.2f%%\n", 100**rep.Agree.Teacher)
		}
		if singleClassifier(*rep.Agree) {
			fmt.Fprintf(tw, "top-1 agreement\t%.2f%%\nKL(teacher‖model)\t%.5f\n", 100*rep.Agree.Top1, rep.Agree.KL)
		} else {
			for _, o := range rep.Agree.Outputs {
				fmt.Fprintf(tw, "output %s\n", outputFigures(o))
			}
		}
	}
	return tw.Flush()
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/chanopt/chanopt/onnx"
	"github.com/urfave/cli/v2"
)

var inputShapeFlag = &cli.StringSliceFlag{
	Name:  "input-shape",
	Usage: "fix an input's symbolic dims: [NAME:]D0,D1,.. (repeatable)",
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show a model's inputs, outputs, ops, params and MACs",
		ArgsUsage: "MODEL",
		Flags: []cli.Flag{
			inputShapeFlag,
			&cli.BoolFlag{Name: "json", Usage: "print the JSON report instead of the table"},
			&cli.IntFlag{Name: "top", Value: 10, Usage: "how many of the heaviest layers to list"},
		},
		Action: func(c *cli.Context) error {
			path, err := modelArg(c)
			if err != nil {
				return err
			}
			rep, err := inspectModel(path, c.StringSlice("input-shape"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printInspect(c.App.Writer, rep, c.Int("top"))
			return nil
		},
	}
}

// tensorInfo describes a graph input or output.
type tensorInfo struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []string `json:"shape"`
}

type layerInfo struct {
	Name   string `json:"name"`
	Op     string `json:"op"`
	MACs   int64  `json:"macs"`
	Params int64  `json:"params"`
}

// inspectReport is the JSON of `chanopt inspect --json`.
type inspectReport struct {
	Model      string         `json:"model"`
	IRVersion  int64          `json:"ir_version"`
	Opset      int64          `json:"opset"`
	Producer   string         `json:"producer,omitempty"`
	Inputs     []tensorInfo   `json:"inputs"`
	Outputs    []tensorInfo   `json:"outputs"`
	InputShape []tensorInfo   `json:"input_shape"`
	Ops        map[string]int `json:"ops"`
	Nodes      int            `json:"nodes"`
	Params     int64          `json:"params"`
	MACs       int64          `json:"macs"`
	Layers     []layerInfo    `json:"layers"`
	UnknownOps []string       `json:"unknown_ops,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
}

func describe(g *onnx.Graph, name string) tensorInfo {
	v := g.Values[name]
	ti := tensorInfo{Name: name, DType: "?", Shape: []string{}}
	if v == nil {
		return ti
	}
	ti.DType = v.Type.String()
	for _, d := range v.Shape {
		ti.Shape = append(ti.Shape, d.String())
	}
	return ti
}

// parseInputShapes turns --input-shape flags into per-input shapes.
func parseInputShapes(g *onnx.Graph, specs []string) (map[string]onnx.Shape, error) {
	out := map[string]onnx.Shape{}
	for _, spec := range specs {
		name, s, err := parseInputShape(spec)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		if name == "" {
			if len(g.Inputs) == 0 {
				return nil, fmt.Errorf("--input-shape %q: the model has no inputs", spec)
			}
			name = g.Inputs[0]
		}
		if err := checkGivenShape(g, spec, name, s); err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

// maxInputElements bounds the elements of one input shape given by --input-shape (4 Gi floats).
const maxInputElements = 1 << 30

// checkGivenShape refuses an --input-shape for an input the model does not have, of another rank
// than declared, contradicting a fixed dim, or too large.
func checkGivenShape(g *onnx.Graph, spec, name string, s onnx.Shape) error {
	if !slices.Contains(g.Inputs, name) {
		return usagef("--input-shape %q: the model has no input %q (inputs: %s)", spec, name, strings.Join(g.Inputs, ", "))
	}
	n := int64(1)
	for _, d := range s {
		if !d.Known() || d.Size < 1 {
			return usagef("--input-shape %q: dims must be positive", spec)
		}
		if n > maxInputElements/d.Size {
			return usagef("--input-shape %q: more than %d elements", spec, maxInputElements)
		}
		n *= d.Size
	}
	v := g.Values[name]
	if v == nil || v.Shape == nil {
		return nil
	}
	if len(v.Shape) != len(s) {
		return usagef("--input-shape %q: input %s has rank %d (%v)", spec, name, len(v.Shape), v.Shape)
	}
	for i, d := range v.Shape {
		if d.Known() && d.Size != s[i].Size {
			return usagef("--input-shape %q: dim %d of input %s is fixed at %d", spec, i, name, d.Size)
		}
	}
	return nil
}

func inspectModel(path string, shapeSpecs []string) (*inspectReport, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	rep := &inspectReport{Model: path, IRVersion: m.Source.GetIrVersion(), Opset: m.Opset(),
		Producer: strings.TrimSpace(m.Source.GetProducerName() + " " + m.Source.GetProducerVersion()), Ops: map[string]int{}}
	for _, in := range g.Inputs {
		rep.Inputs = append(rep.Inputs, describe(g, in))
	}
	for _, o := range g.Outputs {
		rep.Outputs = append(rep.Outputs, describe(g, o))
	}
	for _, n := range g.Nodes {
		op := n.OpType
		if n.Domain != "" {
			op = n.Domain + "." + op
		}
		rep.Ops[op]++
	}
	rep.Nodes = len(g.Nodes)
	given, err := parseInputShapes(g, shapeSpecs)
	if err != nil {
		return nil, err
	}
	shapes, err := onnx.BatchOne(g, given)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res, err := onnx.InferShapes(m, onnx.InferOptions{Inputs: shapes, Lenient: true, Fold: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, in := range g.Inputs {
		rep.InputShape = append(rep.InputShape, describe(g, in))
	}
	rep.UnknownOps = res.Skipped
	rep.Params = onnx.CountParams(m)
	for _, n := range g.Nodes {
		macs, err := onnx.NodeMACs(g, n)
		if err != nil {
			if len(res.Skipped) == 0 {
				return nil, fmt.Errorf("%s: node %s (%s): %w", path, n.Label(), n.OpType, err)
			}
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("MACs of %s (%s) unknown: it follows an op chanopt does not know", n.Label(), n.OpType))
			continue
		}
		params := onnx.NodeParams(g, n)
		rep.MACs += macs
		if macs > 0 || params > 0 {
			rep.Layers = append(rep.Layers, layerInfo{Name: n.Label(), Op: n.OpType, MACs: macs, Params: params})
		}
	}
	return rep, nil
}

// thousands formats an integer with comma separators.
func thousands(v int64) string {
	s := fmt.Sprint(v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func shapeString(ti tensorInfo) string {
	return ti.DType + "[" + strings.Join(ti.Shape, "x") + "]"
}

func printInspect(w io.Writer, rep *inspectReport, top int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", rep.Model)
	fmt.Fprintf(tw, "format\tIR %d, opset %d, %d nodes", rep.IRVersion, rep.Opset, rep.Nodes)
	if rep.Producer != "" {
		fmt.Fprintf(tw, ", made by %s", rep.Producer)
	}
	fmt.Fprintln(tw)
	for _, in := range rep.Inputs {
		fmt.Fprintf(tw, "input\t%s %s\n", in.Name, shapeString(in))
	}
	for _, o := range rep.Outputs {
		fmt.Fprintf(tw, "output\t%s %s\n", o.Name, shapeString(o))
	}
	fmt.Fprintf(tw, "params\t%s\n", thousands(rep.Params))
	var at []string
	for _, in := range rep.InputShape {
		at = append(at, strings.Join(in.Shape, "x"))
	}
	fmt.Fprintf(tw, "MACs\t%s (at input %s)\n", thousands(rep.MACs), strings.Join(at, ", "))
	ops := make([]string, 0, len(rep.Ops))
	for op := range rep.Ops {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if rep.Ops[ops[i]] != rep.Ops[ops[j]] {
			return rep.Ops[ops[i]] > rep.Ops[ops[j]]
		}
		return ops[i] < ops[j]
	})
	var hist []string
	for _, op := range ops {
		hist = append(hist, fmt.Sprintf("%s %d", op, rep.Ops[op]))
	}
	fmt.Fprintf(tw, "ops\t%s\n", strings.Join(hist, ", "))
	for _, u := range rep.UnknownOps {
		fmt.Fprintf(tw, "unknown op\t%s: its outputs' shapes are unknown\n", u)
	}
	for _, wmsg := range rep.Warnings {
		fmt.Fprintf(tw, "warning\t%s\n", wmsg)
	}
	tw.Flush()
	layers := append([]layerInfo(nil), rep.Layers...)
	sort.SliceStable(layers, func(i, j int) bool { return layers[i].MACs > layers[j].MACs })
	if top > len(layers) {
		top = len(layers)
	}
	if top <= 0 || rep.MACs == 0 {
		return
	}
	fmt.Fprintf(w, "\nheaviest layers\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "layer\top\tMACs\tshare\tparams\t\n")
	for _, l := range layers[:top] {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s\t\n", l.Name, l.Op, thousands(l.MACs), 100*float64(l.MACs)/float64(rep.MACs), thousands(l.Params))
	}
	tw.Flush()
}

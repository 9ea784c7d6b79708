package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/chanopt/chanopt/onnx"
)

// interspersed moves a command's flags before its positional arguments, so that
// `chanopt shrink MODEL --macs 0.5 -o OUT` works as users write it: urfave/cli/v2 stops reading
// flags at the first positional argument.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	ci := -1
	for i := 1; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			continue
		}
		cmd = app.Command(args[i])
		ci = i
		break
	}
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	var flags, pos []string
	rest := args[ci+1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && i+1 < len(rest) {
			flags = append(flags, rest[i+1])
			i++
		}
	}
	out := append(append([]string(nil), args[:ci+1]...), flags...)
	if len(pos) > 0 {
		out = append(append(out, "--"), pos...)
	}
	return out
}

// parseInputShape parses one --input-shape flag value: "[NAME:]D0,D1,..". An empty name means the
// model's first input.
func parseInputShape(spec string) (name string, s onnx.Shape, err error) {
	body := spec
	if i := strings.LastIndex(spec, ":"); i >= 0 {
		name, body = spec[:i], spec[i+1:]
	}
	for _, f := range strings.Split(body, ",") {
		f = strings.TrimSpace(f)
		var d int64
		if _, err := fmt.Sscan(f, &d); err != nil || d <= 0 {
			return "", nil, fmt.Errorf("bad --input-shape %q: %q is not a positive dim", spec, f)
		}
		s = append(s, onnx.D(d))
	}
	return name, s, nil
}

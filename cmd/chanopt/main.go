package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "chanopt",
		Usage:     "make pretrained ONNX CNNs slimmer before deployment",
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by run, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err.Error()}
		},
		Commands: []*cli.Command{
			inspectCommand(),
			groupsCommand(),
			shrinkCommand(),
			evalCommand(),
			analyzeCommand(),
			runCommand(),
			benchCommand(),
		},
		HideHelpCommand: true,
		// --input-shape values contain commas: one flag, one shape.
		DisableSliceFlagSeparator: true,
	}
	for _, c := range app.Commands {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} }
	}
	return app
}

// run executes the CLI and returns the process exit code: 0 ok, 1 failure, 2 usage.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		// A panic is a bug in chanopt, never the user's fault; still report it as one line.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "chanopt: internal error: %v\n", r)
			code = 1
		}
	}()
	app := newApp(stdout, stderr)
	ctx, in, stop := watchSignals(stderr, os.Exit)
	defer stop()
	app.Metadata = map[string]any{interruptsKey: in}
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") && app.Command(args[1]) == nil {
		fmt.Fprintf(stderr, "chanopt: no command %q (see chanopt --help)\n", args[1])
		return 2
	}
	err := app.RunContext(ctx, interspersed(app, args))
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "chanopt: %v (see chanopt --help)\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "chanopt: %v\n", err)
	return 1
}

func main() {
	setGCTarget()
	stop := startProfiles()
	code := run(os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// modelArg returns the single MODEL argument of a command.
func modelArg(c *cli.Context) (string, error) {
	switch c.NArg() {
	case 0:
		return "", usagef("%s: missing MODEL argument", c.Command.Name)
	case 1:
		return c.Args().First(), nil
	}
	return "", usagef("%s: want one MODEL argument, got %d", c.Command.Name, c.NArg())
}

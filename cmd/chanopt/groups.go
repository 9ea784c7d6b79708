package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
	"github.com/urfave/cli/v2"
)

func groupsCommand() *cli.Command {
	return &cli.Command{
		Name:      "groups",
		Usage:     "list the channel groups that must shrink together, and why pinned ones cannot",
		ArgsUsage: "MODEL",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			path, err := modelArg(c)
			if err != nil {
				return err
			}
			m, err := onnx.Load(path)
			if err != nil {
				return err
			}
			a, err := rewrite.Groups(m)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Groups []*rewrite.Group `json:"groups"`
				}{a.Groups})
			}
			printGroups(c.App.Writer, path, a)
			return nil
		},
	}
}

func printGroups(w io.Writer, path string, a *rewrite.Analysis) {
	prunable, chans, pinnedChans := 0, 0, 0
	for _, g := range a.Groups {
		if g.Prunable {
			prunable++
			chans += g.Channels
		} else {
			pinnedChans += g.Channels
		}
	}
	fmt.Fprintf(w, "%s: %d groups, %d prunable (%d channels), %d pinned (%d channels)\n\n",
		path, len(a.Groups), prunable, chans, len(a.Groups)-prunable, pinnedChans)
	for _, g := range a.Groups {
		state := "prunable"
		if !g.Prunable {
			state = "pinned: " + g.Reason
		}
		extra := ""
		if g.Blocks > 1 {
			extra = fmt.Sprintf(", %d blocks", g.Blocks)
		}
		fmt.Fprintf(w, "group %d  %d channels%s  %s\n", g.ID, g.Channels, extra, state)
		const most = 8
		ms := g.Members
		more := ""
		if len(ms) > most {
			more = fmt.Sprintf(" … and %d more", len(ms)-most)
			ms = ms[:most]
		}
		if len(ms) > 0 {
			fmt.Fprintf(w, "    %s%s\n", strings.Join(ms, ", "), more)
		}
	}
}

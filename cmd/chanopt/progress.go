package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// progress reports long work: a bar with ETA on a terminal, a log line every few seconds in a
// pipeline's logs, nothing with --quiet.
type progress struct {
	w     io.Writer
	stage string
	bar   *progressbar.ProgressBar
	last  time.Time
	start time.Time
	quiet bool
}

func newProgress(c *cli.Context, stage string) *progress {
	p := &progress{w: c.App.ErrWriter, stage: stage, quiet: c.Bool("quiet"), start: time.Now()}
	if f, ok := p.w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !p.quiet {
		p.bar = progressbar.NewOptions(1, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(stage),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond))
	}
	return p
}

// update records progress; best is a stage-specific figure shown beside it.
func (p *progress) update(done, total int, best float64) {
	if p.quiet {
		return
	}
	if p.bar != nil {
		p.bar.ChangeMax(total)
		if best != 0 {
			p.bar.Describe(fmt.Sprintf("%s (best %.4g)", p.stage, best))
		} else {
			p.bar.Describe(p.stage)
		}
		p.bar.Set(done)
		return
	}
	if time.Since(p.last) >= 5*time.Second || done == total {
		p.last = time.Now()
		eta := time.Duration(0)
		if done > 0 {
			eta = time.Duration(float64(time.Since(p.start)) * float64(total-done) / float64(done))
		}
		fig := ""
		if best != 0 {
			fig = fmt.Sprintf(", best %.4g", best)
		}
		fmt.Fprintf(p.w, "chanopt: %s %d/%d%s, eta %s\n", p.stage, done, total, fig, eta.Round(time.Second))
	}
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// stages reports optimizer.Shrink's stages: a line saying what each does, then its progress.
type stages struct {
	c   *cli.Context
	cur *progress
}

func newStages(c *cli.Context) *stages { return &stages{c: c} }

func (s *stages) Stage(name, what string) {
	s.finish()
	s.Note(name + ": " + what)
	s.cur = newProgress(s.c, name)
}

func (s *stages) Step(done, total int, figure float64) {
	if s.cur != nil {
		s.cur.update(done, total, figure)
	}
}

func (s *stages) Note(msg string) {
	if !s.c.Bool("quiet") {
		fmt.Fprintf(s.c.App.ErrWriter, "chanopt: %s\n", msg)
	}
}

// finish ends the current stage's bar.
func (s *stages) finish() {
	if s.cur != nil {
		s.cur.done()
		s.cur = nil
	}
}

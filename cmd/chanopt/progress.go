package main

import (
	"fmt"
	"io"
	"os"
	"sync"
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

// update records progress; best is a stage-specific figure shown beside it. It reports whether it
// printed a log line.
func (p *progress) update(done, total int, best float64) bool {
	if p.quiet {
		return false
	}
	if p.bar != nil {
		p.bar.ChangeMax(total)
		if best != 0 {
			p.bar.Describe(fmt.Sprintf("%s (best %.4g)", p.stage, best))
		} else {
			p.bar.Describe(p.stage)
		}
		p.bar.Set(done)
		return false
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
		return true
	}
	return false
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// stages reports optimizer.Shrink's stages: a line saying what each does, then its progress. In a
// log (not a terminal) a heartbeat prints where the run is whenever 5 s pass without a line, so a
// pipeline never sees chanopt silent for long (one candidate of a 224×224 search can take longer).
type stages struct {
	c     *cli.Context
	quiet bool

	mu          sync.Mutex
	cur         *progress
	name        string
	began, last time.Time
	done, total int
	stop        chan struct{}
}

// heartbeat is how long a log may stay without a line before the next tick prints one: lines are
// at most 4 s apart (5 s with a slow scheduler).
const heartbeat = 3500 * time.Millisecond

// beatEvery is how often the heartbeat looks: lines come at most heartbeat + beatEvery apart.
const beatEvery = 500 * time.Millisecond

func newStages(c *cli.Context) *stages {
	s := &stages{c: c, quiet: c.Bool("quiet"), last: time.Now(), stop: make(chan struct{})}
	if f, ok := c.App.ErrWriter.(*os.File); !s.quiet && !(ok && term.IsTerminal(int(f.Fd()))) {
		go s.beat()
	}
	return s
}

func (s *stages) beat() {
	t := time.NewTicker(beatEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			if s.name != "" && now.Sub(s.last) >= heartbeat {
				where := ""
				if s.total > 0 {
					where = fmt.Sprintf(" (%d/%d)", s.done, s.total)
				}
				s.printf("%s: working%s, %s in this stage", s.name, where, now.Sub(s.began).Round(time.Second))
			}
			s.mu.Unlock()
		}
	}
}

// printf writes one line; the caller holds mu.
func (s *stages) printf(format string, a ...any) {
	if s.quiet {
		return
	}
	fmt.Fprintf(s.c.App.ErrWriter, "chanopt: "+format+"\n", a...)
	s.last = time.Now()
}

func (s *stages) Stage(name, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.end()
	returnMemory()
	s.printf("%s: %s", name, what)
	s.name, s.began, s.done, s.total = name, time.Now(), 0, 0
	s.cur = newProgress(s.c, name)
}

func (s *stages) Step(done, total int, figure float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done, s.total = done, total
	if s.cur != nil && s.cur.update(done, total, figure) {
		s.last = time.Now()
	}
}

func (s *stages) Note(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.printf("%s", msg)
}

// end ends the current stage's bar; the caller holds mu.
func (s *stages) end() {
	if s.cur != nil {
		s.cur.done()
		s.cur = nil
	}
}

// finish ends the last stage and the heartbeat.
func (s *stages) finish() {
	close(s.stop)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.end()
	s.name = ""
}

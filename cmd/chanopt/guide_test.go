package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
)

// TestShrinkGuideFlag: the hidden --guide reaches the search (the report names it) and a wrong
// name, or the sensitivity guide without data, is a usage error.
func TestShrinkGuideFlag(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	dir := t.TempDir()
	for _, c := range []struct {
		guide string
		code  int
		err   string
	}{
		{"reversed", 0, ""},
		{"none", 0, ""},
		{"bogus", 2, "want one of"},
		{"sensitivity", 2, "give --data"},
	} {
		rep := filepath.Join(dir, c.guide+".json")
		code, _, stderr := runCLI("shrink", src, "--macs", "0.5", "--no-distill", "--iterations", "200", "--round-to", "1",
			"--allow-slower", "--guide", c.guide, "-o", filepath.Join(dir, c.guide+".onnx"), "--report", rep, "-q")
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("--guide %s: exit %d, stderr %q; want exit %d with %q", c.guide, code, stderr, c.code, c.err)
			continue
		}
		if code != 0 {
			continue
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			SearchStats struct {
				Guide             string `json:"guide"`
				ScheduleCompleted bool   `json:"schedule_completed"`
			} `json:"search_stats"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.SearchStats.Guide != c.guide || !r.SearchStats.ScheduleCompleted {
			t.Errorf("--guide %s: the report says guide %q, schedule completed %v", c.guide, r.SearchStats.Guide, r.SearchStats.ScheduleCompleted)
		}
	}
}

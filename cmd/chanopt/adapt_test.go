package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
)

// TestShrinkAdaptFlags: --adapt needs data, the distill repair, epochs and a macs or params
// budget; each missing one is a usage error (exit 2) naming the cause, before any long work.
func TestShrinkAdaptFlags(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	data := filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz")
	out := filepath.Join(t.TempDir(), "out.onnx")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--macs", "0.5"}, "give --data"},
		{[]string{"--macs", "0.5", "--data", data, "--no-distill"}, "distill repair"},
		{[]string{"--macs", "0.5", "--data", data, "--epochs", "0"}, "needs epochs"},
		{[]string{"--latency", "0.5", "--data", data}, "latency"},
	} {
		args := append([]string{"shrink", src, "--adapt", "-o", out}, c.args...)
		code, _, stderr := runCLI(args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, %q; want 2 and one line naming %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a usage error wrote a model")
	}
}

// TestShrinkAdapt: with --adapt the report says under distill.adapt what the adaptive sizing
// measured and moved, the groups and costs reported are those of the model written, the budget
// holds, and the same seed gives the same bytes (--time 0 and --round-to 1 take timing out of every
// choice, and the report says nothing depended on it).
func TestShrinkAdapt(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	data := filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz")
	dir := t.TempDir()
	var models [][]byte
	var reports []string
	for _, tag := range []string{"a", "b"} {
		out, rep := filepath.Join(dir, tag+".onnx"), filepath.Join(dir, tag+".json")
		code, _, stderr := runCLI("shrink", src, "--macs", "0.5", "--epochs", "1", "--search", "uniform", "--samples", "400",
			"--data", data, "--threads", "2", "--round-to", "1", "--time", "0", "--allow-slower", "--adapt", "-q", "-o", out, "--report", rep)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, b)
		rb, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Distill struct {
				Adapt *struct {
					Points, Measured int
					Reallocations    []json.RawMessage
				} `json:"adapt"`
			} `json:"distill"`
		}
		if err := json.Unmarshal(rb, &raw); err != nil {
			t.Fatal(err)
		}
		if a := raw.Distill.Adapt; a == nil || a.Points != 3 || a.Measured != 3 || a.Reallocations == nil {
			t.Fatalf("distill.adapt is %+v; want 3 points measured and a list of reallocations", a)
		}
		var dep struct {
			TimingDependent []string `json:"timing_dependent"`
		}
		if err := json.Unmarshal(rb, &dep); err != nil || len(dep.TimingDependent) > 0 {
			t.Errorf("timing_dependent is %q (%v); want nothing with --time 0 --round-to 1", dep.TimingDependent, err)
		}
		var r shrinkReport
		if err := json.Unmarshal(withoutTimings(t, rb), &r); err != nil {
			t.Fatal(err)
		}
		if ratio := float64(r.After.MACs) / float64(r.Before.MACs); ratio > 0.5 {
			t.Errorf("kept %.4f of the MACs for a 0.5 budget", ratio)
		}
		code, stdout, stderr := runCLI("inspect", out, "--json")
		if code != 0 {
			t.Fatalf("inspect: %s", stderr)
		}
		var ins struct{ MACs int64 }
		if err := json.Unmarshal([]byte(stdout), &ins); err != nil || ins.MACs != r.After.MACs {
			t.Errorf("the model written has %d MACs, the report says %d (%v)", ins.MACs, r.After.MACs, err)
		}
		r.Output = ""
		j, _ := json.Marshal(r)
		reports = append(reports, string(j))
	}
	if !bytes.Equal(models[0], models[1]) || reports[0] != reports[1] {
		t.Error("the same seed wrote different bytes or reports")
	}
}

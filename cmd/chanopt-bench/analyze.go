package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chanopt/chanopt/linalg"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
)

// benchAnalyze: the metrics of resnet50 (every layer's EVBMF on both unfoldings, the group scores)
// against one plain sweep of singular values over the same unfoldings' output sides; then the two
// commands with a wall-time target on resnet50, run as a user runs them (the CLI built from this
// tree): `analyze`, and the structure-only `shrink --macs 0.5 --no-distill` (metrics, data-free
// mean compensation, the annealer, saving, and the engine's latency before and after for the
// printed table).
func benchAnalyze(env *benchEnv) error {
	path := filepath.Join(env.zoo, "resnet50.onnx")
	m, err := onnx.Load(path)
	if err != nil {
		return fmt.Errorf("%v (run make zoo)", err)
	}
	t0 := time.Now()
	a, err := rewrite.Groups(m)
	if err != nil {
		return err
	}
	layers, err := optimizer.LayerMetricsOf(m)
	if err != nil {
		return err
	}
	optimizer.GroupScores(a, layers)
	analyze := time.Since(t0)
	t1 := time.Now()
	for _, n := range m.Graph.Nodes {
		if n.OpType != "Conv" && n.OpType != "Gemm" {
			continue
		}
		w := m.Graph.Inits[n.Input(1)]
		if w == nil || len(w.Dims) < 2 {
			continue
		}
		if _, err := linalg.GramSingularValues(optimizer.Unfold(w.Floats, w.Dims, 0)); err != nil {
			return err
		}
	}
	sv := time.Since(t1)
	fmt.Printf("   resnet50: analyze (groups + EVBMF on %d layers, both sides) %.2f s; one singular-value sweep of the output sides %.2f s: ratio %.2fx (target: analyze under 10 s)\n",
		len(layers), analyze.Seconds(), sv.Seconds(), analyze.Seconds()/sv.Seconds())

	dir, err := os.MkdirTemp("", "chanopt-bench-cli")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "chanopt")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/chanopt").CombinedOutput(); err != nil {
		return fmt.Errorf("building the CLI: %v\n%s", err, out)
	}
	for _, c := range []struct {
		label string
		args  []string
	}{
		{"chanopt analyze resnet50", []string{"analyze", path}},
		{"chanopt shrink resnet50 --macs 0.5 --no-distill", []string{"shrink", path, "--macs", "0.5", "--no-distill", "-o", filepath.Join(dir, "r50.slim.onnx")}},
	} {
		wall, cpu, err := timeCommand(3, bin, c.args...)
		if err != nil {
			return fmt.Errorf("%s: %v", c.label, err)
		}
		fmt.Printf("   %s: %.2f s wall, %.2f s CPU (medians of 3; target under 10 s wall; load average %s)\n",
			c.label, wall.Seconds(), cpu.Seconds(), loadAverage())
	}
	return nil
}

// timeCommand runs a command n times and returns the medians of its wall time and of its CPU time
// (user + system).
func timeCommand(n int, name string, args ...string) (wall, cpu time.Duration, err error) {
	var walls, cpus []time.Duration
	for range n {
		cmd := exec.Command(name, args...)
		cmd.Stdout = nil
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
		}
		walls = append(walls, time.Since(start))
		cpus = append(cpus, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	}
	mid := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	return mid(walls), mid(cpus), nil
}

// loadAverage is the 1-, 5- and 15-minute load average ("?" where /proc/loadavg is missing): the
// times above are only comparable between runs at a similar load.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

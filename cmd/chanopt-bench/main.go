// Command bench prints chanopt's performance as ratios measured in one run against reference tools
// on the same models (`make bench`). Absolute times are printed beside the ratios for context only.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// section is one comparison; it returns an error when a reference it needs is missing.
type section struct {
	name string
	run  func(env *benchEnv) error
}

// benchEnv says where the models are.
type benchEnv struct {
	zoo, models string
}

var sections = []section{
	{"format", benchFormat},
	{"inference", benchInference},
	{"train", benchTrain},
	{"analyze", benchAnalyze},
	{"search", benchSearch},
	{"ablation", benchAblation},
	{"distill", benchDistill},
	{"datafree", benchDataFree},
	{"defaultcut", benchDefaultCut},
	{"target", benchTarget},
	{"scale", benchScale},
	{"speed", benchSpeed},
	{"runtime", benchRuntime},
}

func main() {
	only := flag.String("only", "", "comma-separated sections to run ("+names()+")")
	flag.Parse()
	env := &benchEnv{zoo: os.Getenv("CHANOPT_ZOO"), models: "models"}
	if env.zoo == "" {
		home, _ := os.UserHomeDir()
		env.zoo = home + "/.cache/chanopt/zoo"
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s != "" {
			want[s] = true
		}
	}
	failed := false
	for _, s := range sections {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Printf("== %s\n", s.name)
		if err := s.run(env); err != nil {
			fmt.Printf("   FAILED: %v\n", err)
			failed = true
		}
		fmt.Println()
	}
	if failed {
		os.Exit(1)
	}
}

func names() string {
	var n []string
	for _, s := range sections {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// median runs f n times and returns the median duration.
func median(n int, f func() error) (time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// bundledModels lists the bundled models, or those CHANOPT_BENCH_MODELS names (comma-separated).
func bundledModels(env *benchEnv) []string {
	if only := os.Getenv("CHANOPT_BENCH_MODELS"); only != "" {
		var paths []string
		for _, n := range strings.Split(only, ",") {
			paths = append(paths, filepath.Join(env.models, n+".onnx"))
		}
		return paths
	}
	paths, _ := filepath.Glob(filepath.Join(env.models, "*.onnx"))
	return paths
}

// loadGrouped loads a bundled model with its channel groups and batch-1 input shapes.
func loadGrouped(path string) (name string, m *onnx.Model, shapes map[string]onnx.Shape, a *rewrite.Analysis, err error) {
	name = strings.TrimSuffix(filepath.Base(path), ".onnx")
	if m, err = onnx.Load(path); err != nil {
		return
	}
	if shapes, err = onnx.BatchOne(m.Graph, nil); err != nil {
		return
	}
	a, err = rewrite.Groups(m)
	return
}

// builtBinary is the chanopt binary `make bench` builds, for sections that run the command as a
// user would, and a scratch folder for their outputs (remove it when done).
func builtBinary(prefix string) (bin, dir string, err error) {
	if bin, err = filepath.Abs("bin/chanopt"); err != nil {
		return "", "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", "", fmt.Errorf("%s: %w (make bench builds it)", bin, err)
	}
	dir, err = os.MkdirTemp("", prefix)
	return bin, dir, err
}

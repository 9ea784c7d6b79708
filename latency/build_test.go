package latency

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
	"github.com/chanopt/chanopt/rewrite"
)

func requireORT(t *testing.T) {
	t.Helper()
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
}

func analyse(t *testing.T, path string) *rewrite.Analysis {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// checkTable checks a table's structure: every weighted node is one layer, every prunable group
// drives some layer, ladders are sorted and end at the full width, and Predict at full widths is
// the whole model's time.
func checkTable(t *testing.T, a *rewrite.Analysis, tb *Table) {
	t.Helper()
	weightedNodes := 0
	for _, n := range a.Model.Graph.Nodes {
		if (n.OpType == "Conv" || n.OpType == "Gemm") && a.Model.Graph.Inits[n.Input(1)] != nil {
			weightedNodes++
		}
	}
	if len(tb.Layers) != weightedNodes || len(tb.Kernels) == 0 || len(tb.Kernels) > len(tb.Layers) {
		t.Errorf("%d layers over %d kernels, want one layer per Conv/Gemm (%d)", len(tb.Layers), len(tb.Kernels), weightedNodes)
	}
	driven := map[rewrite.GroupID]bool{}
	for _, l := range tb.Layers {
		for _, g := range append(slices.Clone(l.In.Groups), l.Out.Groups...) {
			driven[g] = true
		}
		k := tb.Kernels[l.Kernel]
		if len(l.In.Groups) > 0 && !k.Diagonal && len(k.InLadder) < 2 || len(l.Out.Groups) > 0 && len(k.OutLadder) < 2 {
			t.Errorf("layer %v has groups but kernel %d has no ladder: %+v", l.Nodes, l.Kernel, k)
		}
	}
	for _, g := range a.Prunable() {
		if !driven[g.ID] {
			t.Errorf("prunable group %d (%d channels) drives no layer", g.ID, g.Channels)
		}
	}
	for i, k := range tb.Kernels {
		if k.FullMS <= 0 {
			t.Errorf("kernel %d: full-width time %v", i, k.FullMS)
		}
		for _, l := range []struct {
			pts  []Point
			full int
		}{{k.InLadder, k.In}, {k.OutLadder, k.Out}} {
			if len(l.pts) == 0 {
				continue
			}
			if !slices.IsSortedFunc(l.pts, func(a, b Point) int { return a.Width - b.Width }) || l.pts[len(l.pts)-1].Width != l.full {
				t.Errorf("kernel %d: ladder %v not sorted up to the full width %d", i, l.pts, l.full)
			}
		}
	}
	if got, want := tb.Predict(nil), time.Duration(tb.FullMS*float64(time.Millisecond)); (got-want).Abs() > time.Microsecond || want <= 0 {
		t.Errorf("Predict at full width = %v, want the whole model's %v", got, want)
	}
}

// TestBuildCaches builds the bundled ResNet-8's table in a fresh cache folder, then again: the
// second build must read the same table back at once.
func TestBuildCaches(t *testing.T) {
	requireORT(t)
	a := analyse(t, "../models/resnet8.onnx")
	dir := t.TempDir()
	first, err := Build(a, Options{Threads: 2, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, a, first)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 || files[0] != CachePath(dir, first.Key) {
		t.Fatalf("cache folder holds %v, want %s", files, CachePath(dir, first.Key))
	}
	start := time.Now()
	second, err := Build(analyse(t, "../models/resnet8.onnx"), Options{Threads: 2, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second || !reflect.DeepEqual(first, second) {
		t.Errorf("second build took %v and equal=%v: want the cached table at once", took, reflect.DeepEqual(first, second))
	}
	// Another thread count or batch is another table.
	other, err := Build(a, Options{Threads: 1, Batch: 2, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if other.Key == first.Key || other.Threads != 1 || other.Batch != 2 || other.Inputs["input"][0] != 2 {
		t.Errorf("threads 1, batch 2: key %q, threads %d, batch %d, inputs %v", other.Key, other.Threads, other.Batch, other.Inputs)
	}
	// A damaged cache file is measured again, not trusted.
	if err := os.WriteFile(CachePath(dir, first.Key), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Build(a, Options{Threads: 2, CacheDir: dir})
	if err != nil || again.Key != first.Key || again.Measurements != first.Measurements {
		t.Errorf("after damaging the cache: %v, %+v", err, again)
	}
}

// TestBuildResNet50Time checks ResNet-50's table build time (the target: at most 60 s on 2 cores).
func TestBuildResNet50Time(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a table for ResNet-50 (about half a minute)")
	}
	requireORT(t)
	path := filepath.Join(testenv.ZooDir(), "resnet50.onnx")
	if _, err := os.Stat(path); err != nil {
		testenv.Missing(t, "%s (run make zoo)", path)
	}
	a := analyse(t, path)
	tb, err := Build(a, Options{Threads: 2, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, a, tb)
	t.Logf("resnet50: %d layers, %d kernels, %d single-layer models timed in %.1f s; whole model %.2f ms ± %.2f",
		len(tb.Layers), len(tb.Kernels), tb.Measurements, tb.BuildSeconds, tb.FullMS, tb.FullSpreadMS)
	// The target is 60 s on a quiet 2-core machine; under go test the other packages' tests share
	// the cores (ci measured 166 s with a bench running beside it), so only a gross regression
	// fails here.
	if tb.BuildSeconds > 180 {
		t.Errorf("built in %.1f s, want at most 60 s on a quiet machine (180 s under a loaded test run)", tb.BuildSeconds)
	}
}

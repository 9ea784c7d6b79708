package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/ort"
)

// readShrinkReport reads a report written by shrink --report.
func readShrinkReport(t *testing.T, path string) shrinkReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r shrinkReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// TestShrinkWithoutORT runs this test binary again with $CHANOPT_ORT_LIB naming a missing file:
// shrink must then measure in the engine (and say so in one line), for MACs and latency budgets
// alike, while --runtime ort must fail naming the library.
func TestShrinkWithoutORT(t *testing.T) {
	if os.Getenv("CHANOPT_SHRINK_CHILD") == "" {
		missing := filepath.Join(t.TempDir(), "missing", "libonnxruntime.so.1")
		cmd := exec.Command(os.Args[0], "-test.run=^TestShrinkWithoutORT$", "-test.v")
		cmd.Env = append(os.Environ(), "CHANOPT_ORT_LIB="+missing, "CHANOPT_SHRINK_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestShrinkWithoutORT") {
			t.Errorf("child test failed: %v\n%s", err, out)
		}
		return
	}
	if ort.Available() == nil {
		t.Fatal("ONNX Runtime loaded although $CHANOPT_ORT_LIB names a missing file")
	}
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"macs by default", []string{"--macs", "0.5"}, 0, "measuring latency in chanopt's engine"},
		{"latency by default", []string{"--latency", "0.6"}, 0, "measuring latency in chanopt's engine"},
		{"engine asked for", []string{"--macs", "0.5", "--runtime", "engine"}, 0, "speedup in engine"},
		{"ort asked for", []string{"--macs", "0.5", "--runtime", "ort"}, 1, "ONNX Runtime is not available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			args := append([]string{"shrink", src, "--no-distill", "--iterations", "300", "--allow-slower",
				"-o", filepath.Join(dir, "out.onnx"), "--report", rep}, tc.args...)
			code, _, stderr := runCLI(args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr does not say %q:\n%s", code, tc.code, tc.want, stderr)
			}
			if code != 0 {
				return
			}
			r := readShrinkReport(t, rep)
			if r.Runtime == nil || r.Runtime.Runtime != "engine" || len(r.Runtime.Batches) != 1 || r.Runtime.Batches[0].AfterMS <= 0 {
				t.Errorf("report's runtime section = %+v, want the engine's timing at batch 1", r.Runtime)
			}
			if l := r.LatencySearch; strings.Contains(tc.name, "latency") && (l == nil || l.Runtime != "engine" || l.Attempts < 1 || l.BeforeMS <= 0) {
				t.Errorf("latency search %+v, want the engine's measurements", l)
			}
			if r.Runtime != nil && len(r.Runtime.Grids) > 0 {
				t.Errorf("the engine searched %d grids, want one (multiples of 1)", len(r.Runtime.Grids))
			}
		})
	}
}

// TestShrinkRuntimeORT: with ONNX Runtime found, shrink measures in it by default, searches each of
// its grids under a speed limit from its latency table (keeping the MACs budget to within 0.02),
// reports batch 1 and --latency-batch, and exits non-zero exactly when the slim model is not
// faster unless --allow-slower.
func TestShrinkRuntimeORT(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	code, _, stderr := runCLI("shrink", src, "--macs", "0.5", "--no-distill", "--iterations", "300", "--latency-batch", "8",
		"-o", filepath.Join(dir, "out.onnx"), "--report", rep)
	r := readShrinkReport(t, rep)
	rr := r.Runtime
	if rr == nil || rr.Runtime != "ort" || rr.Version == "" || rr.Threads <= 0 {
		t.Fatalf("report's runtime section = %+v, want ONNX Runtime with its version and threads", rr)
	}
	if len(rr.Batches) != 2 || rr.Batches[0].Batch != 1 || rr.Batches[1].Batch != 8 {
		t.Errorf("timed batches %+v, want 1 and 8", rr.Batches)
	}
	if len(rr.Grids) != 3 || (rr.RoundTo != 1 && rr.RoundTo != 8 && rr.RoundTo != 16) {
		t.Errorf("grids %+v, kept %d: want 1, 8 and 16 tried and one of them kept", rr.Grids, rr.RoundTo)
	}
	if kept := float64(r.After.MACs) / float64(r.Before.MACs); kept > 0.5 || kept < 0.47 {
		t.Errorf("MACs kept %.3f: want the budget 0.5, less by at most the speed limit's slack and a grid's rounding", kept)
	}
	if st := r.SearchStats; st == nil || st.SpeedLimit <= 0 || st.PredictedSpeed <= 0 || st.PredictedSpeed > st.SpeedLimit+1e-9 ||
		!strings.Contains(stderr, "widths kept to those ort runs fast") {
		t.Errorf("search stats %+v: want a speed limit from the latency table that the result keeps, and stderr to say so:\n%s", st, stderr)
	}
	if slower := code != 0; slower != rr.Slower || slower != strings.Contains(stderr, "SLOWER") {
		t.Errorf("exit %d with slower=%v in the report; stderr:\n%s", code, rr.Slower, stderr)
	}
	t.Logf("kept multiples of %d; batch 1 speedup %.2f, batch 8 speedup %.2f", rr.RoundTo, rr.Batches[0].Speedup, rr.Batches[len(rr.Batches)-1].Speedup)
}

// TestShrinkLatencyORT: a latency budget is predicted from ONNX Runtime's per-layer table and
// measured in it; the slim model's measured ratio is near the budget (loosely: the machine may be
// busy, and at 28×28 a run takes a fraction of a millisecond). One thread: with two on a 2-vCPU
// VM, when sessions were switched after 20 ms (the last one's threads still spinning, see
// ort.SwitchPause), the search once measured 0.640 where the proof measured 0.858 seconds later.
func TestShrinkLatencyORT(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	code, _, stderr := runCLI("shrink", src, "--latency", "0.6", "--no-distill", "--iterations", "300", "--allow-slower",
		"--threads", "1", "-o", filepath.Join(dir, "out.onnx"), "--report", rep)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := readShrinkReport(t, rep)
	l, rr := r.LatencySearch, r.Runtime
	if l == nil || l.Runtime != "ort" || l.Batch != 1 || l.Attempts < 1 || l.Attempts > 3 {
		t.Fatalf("latency search %+v, want ONNX Runtime's at batch 1 after 1 to 3 searches", l)
	}
	if rr == nil || len(rr.Batches) != 1 {
		t.Fatalf("runtime report %+v", rr)
	}
	measured := rr.Batches[0].Ratio
	t.Logf("searched %.3f, proof %.3f of the original's latency (budget 0.6), MACs %.3f", l.Ratio, measured,
		float64(r.After.MACs)/float64(r.Before.MACs))
	if measured > 0.8 {
		t.Errorf("slim model runs at %.3f of the original's latency, budget 0.6", measured)
	}
}

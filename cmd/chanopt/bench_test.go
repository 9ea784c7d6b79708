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

// benchRuntimesOf runs `chanopt bench --json` and returns the runtimes it measured.
func benchRuntimesOf(t *testing.T, args ...string) (code int, runtimes []string, res benchResult, stderr string) {
	t.Helper()
	code, out, stderr := runCLI(append([]string{"bench", "--json", "--time", "50ms"}, args...)...)
	if code != 0 {
		return code, nil, res, stderr
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	for _, r := range res.Runtimes {
		runtimes = append(runtimes, r.Runtime)
	}
	return code, runtimes, res, stderr
}

// TestBenchRuntimes checks --runtime picks what is measured, that both runtimes time the same
// batch and threads, and that the JSON keeps its top-level fields.
func TestBenchRuntimes(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
	model := filepath.Join("..", "..", "models", "resnet8.onnx")
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{model}, 0, []string{"ort", "engine"}},
		{[]string{model, "--runtime", "both", "--batch", "4", "--threads", "1"}, 0, []string{"ort", "engine"}},
		{[]string{model, "--runtime", "ort", "--batch", "2"}, 0, []string{"ort"}},
		{[]string{model, "--runtime", "engine"}, 0, []string{"engine"}},
		{[]string{model, "--runtime", "gpu"}, 2, nil},
	} {
		name := strings.Join(tc.args[1:], " ")
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			code, got, res, stderr := benchRuntimesOf(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("runtimes %v, want %v", got, tc.want)
			}
			if code != 0 {
				return
			}
			if stderr != "" {
				t.Errorf("stderr %q with ONNX Runtime present", stderr)
			}
			if res.Model != model || res.Runtime != tc.want[0] || res.MsPerBatch != res.Runtimes[0].MsPerBatch {
				t.Errorf("top level %+v does not repeat the first runtime %+v", res.benchTiming, res.Runtimes[0])
			}
			for _, r := range res.Runtimes {
				if r.Batch != res.Batch || r.Threads != res.Threads || r.Runs < 5 || r.MsPerBatch <= 0 ||
					r.SpreadMs < 0 || r.MinMs > r.MsPerBatch || r.MaxMs < r.MsPerBatch || r.ImagesPerS <= 0 {
					t.Errorf("%s: implausible timing %+v (batch %d, threads %d)", r.Runtime, r, res.Batch, res.Threads)
				}
			}
			if r := res.Runtimes[0]; r.Runtime == "ort" && r.Version == "" {
				t.Errorf("ort timing has no version: %+v", r)
			}
		})
	}
}

// TestBenchWithoutORT runs this test binary again with $CHANOPT_ORT_LIB naming a missing file: by
// default bench measures the engine and says in one line why ONNX Runtime was not used; asking for
// ort fails in one line; other commands do not notice.
func TestBenchWithoutORT(t *testing.T) {
	if os.Getenv("CHANOPT_BENCH_CHILD") == "" {
		missing := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
		cmd := exec.Command(os.Args[0], "-test.run=^TestBenchWithoutORT$", "-test.v")
		cmd.Env = append(os.Environ(), ort.EnvLibrary+"="+missing, "CHANOPT_BENCH_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestBenchWithoutORT") {
			t.Errorf("child test failed: %v\n%s", err, out)
		}
		return
	}
	model := filepath.Join("..", "..", "models", "resnet8.onnx")
	code, got, res, stderr := benchRuntimesOf(t, model)
	if code != 0 || strings.Join(got, ",") != "engine" {
		t.Fatalf("default bench without ONNX Runtime: exit %d, runtimes %v: %s", code, got, stderr)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "engine only") || !strings.Contains(stderr, ort.EnvLibrary) {
		t.Errorf("stderr %q: want one line saying why ONNX Runtime was not used", stderr)
	}
	if !strings.Contains(res.ORTUnavailable, "not found") {
		t.Errorf("JSON ort_unavailable = %q, want the reason", res.ORTUnavailable)
	}
	for _, args := range [][]string{
		{model, "--runtime", "ort"},
		{model, "--runtime", "both", "--ort-lib", "/nonexistent/libonnxruntime.so"},
	} {
		code, _, _, stderr := benchRuntimesOf(t, args...)
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "not available") {
			t.Errorf("bench %v without ONNX Runtime: exit %d, stderr %q; want 1 and one line", args, code, stderr)
		}
	}
	if code, _, stderr := runCLI("inspect", model); code != 0 {
		t.Errorf("inspect without ONNX Runtime: exit %d: %s", code, stderr)
	}
}

// Package testenv finds the reference tools chanopt's tests compare against (Debian's python3-onnx,
// ONNX Runtime, the torchvision zoo, ONNX's conformance data) and decides what a missing one means:
// a skip on a developer's machine, a failure in CI (CHANOPT_REQUIRE_ALL=1).
//
// It holds test plumbing only and must not be imported by non-test code.
package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// RequireAll reports whether missing reference tools must fail tests (set in CI).
func RequireAll() bool { return os.Getenv("CHANOPT_REQUIRE_ALL") == "1" }

// Missing skips the test, or fails it when every reference tool is required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireAll() {
		t.Fatalf("CHANOPT_REQUIRE_ALL=1 but %s (run make test, which installs it)", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// Python returns Debian's python3, which sees python3-onnx and python3-torch.
func Python() string {
	if p := os.Getenv("CHANOPT_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// RequirePythonModules makes sure Debian's python has the modules, or skips/fails.
func RequirePythonModules(t testing.TB, mods ...string) {
	t.Helper()
	code := "import " + strings.Join(mods, ", ")
	if out, err := exec.Command(Python(), "-c", code).CombinedOutput(); err != nil {
		Missing(t, "%s cannot %q: %s", Python(), code, lastLine(out))
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// checkerScript runs onnx.checker with full checks (shape inference included) on each file given.
const checkerScript = `
import sys, onnx
bad = 0
for p in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(p), full_check=True)
    except Exception as e:
        bad += 1
        print("%s: %s" % (p, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__))
sys.exit(1 if bad else 0)
`

// CheckModels runs onnx.checker.check_model(full_check=True) on model files and fails the test on
// any error.
func CheckModels(t testing.TB, paths ...string) {
	t.Helper()
	RequirePythonModules(t, "onnx")
	cmd := exec.Command(Python(), append([]string{"-c", checkerScript}, paths...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("onnx.checker rejected models:\n%s", out.String())
	}
}

// RepoRoot is the repository's top folder (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ModelsDir is the folder of bundled models.
func ModelsDir(t testing.TB) string { return filepath.Join(RepoRoot(t), "models") }

// BundledModels lists the bundled trained model files.
func BundledModels(t testing.TB) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(ModelsDir(t), "*.onnx"))
	if len(paths) == 0 {
		t.Fatalf("no bundled models under %s", ModelsDir(t))
	}
	return paths
}

// DenseModels lists the bundled models whose outputs are not class logits (models/dense: dense
// maps, embeddings), kept apart from the classifiers that BundledModels lists.
func DenseModels(t testing.TB) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(ModelsDir(t), "dense", "*.onnx"))
	if len(paths) == 0 {
		t.Fatalf("no dense-output models under %s", filepath.Join(ModelsDir(t), "dense"))
	}
	return paths
}

// ZooDir is the folder `make zoo` writes torchvision exports to.
func ZooDir() string {
	if d := os.Getenv("CHANOPT_ZOO"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "chanopt", "zoo")
}

// ZooModels lists the zoo's model files, or skips/fails when the zoo was not built.
func ZooModels(t testing.TB) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(ZooDir(), "*.onnx"))
	if len(paths) < 12 {
		Missing(t, "the torchvision zoo in %s has %d of 12 models (run make zoo)", ZooDir(), len(paths))
	}
	return paths
}

// ConformanceDir is Debian's copy of ONNX's backend test data (libonnx-testdata).
const ConformanceDir = "/usr/share/libonnx-testdata/data"

// RequireConformance skips/fails when the conformance data is missing.
func RequireConformance(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(ConformanceDir); err != nil {
		Missing(t, "%s is missing (apt-get install libonnx-testdata)", ConformanceDir)
	}
	return ConformanceDir
}

// BundledModelsIfAny lists the bundled models without failing when there are none yet.
func BundledModelsIfAny(t testing.TB) []string {
	paths, _ := filepath.Glob(filepath.Join(ModelsDir(t), "*.onnx"))
	return paths
}

// Foreign is a model in the style of another exporter (tf2onnx NHWC, opset 9/11 with Constant
// weights and symbolic dims, ...), made by models/foreign/make_foreign.py.
type Foreign struct {
	Path       string
	InputName  string
	InputShape []int64 // batch 1, concrete spatial size
}

// ForeignDir is where `make zoo` writes the foreign-style models.
func ForeignDir() string {
	if d := os.Getenv("CHANOPT_FOREIGN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "chanopt", "foreign")
}

// ForeignModels lists the foreign-style models with their input shapes, or skips/fails when they
// were not made.
func ForeignModels(t testing.TB) []Foreign {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(ForeignDir(), "*.onnx"))
	if len(paths) < 5 {
		Missing(t, "the foreign-style models in %s were not made (run make zoo)", ForeignDir())
	}
	var out []Foreign
	for _, p := range paths {
		b, err := os.ReadFile(strings.TrimSuffix(p, ".onnx") + ".cost.json")
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var c struct {
			InputName  string  `json:"input_name"`
			InputShape []int64 `json:"input_shape"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, Foreign{Path: p, InputName: c.InputName, InputShape: c.InputShape})
	}
	return out
}

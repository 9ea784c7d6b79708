package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
)

// TestPlotOpensInBrowser writes the analyze chart of every bundled model as HTML, opens it in
// headless Chromium and checks the page the browser built has one bar per layer.
func TestPlotOpensInBrowser(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium is not installed (apt-get install chromium)")
	}
	dir := t.TempDir()
	for _, p := range testenv.BundledModels(t) {
		name := strings.TrimSuffix(filepath.Base(p), ".onnx")
		page := filepath.Join(dir, name+".html")
		code, out, stderr := runCLI("analyze", p, "--json", "--plot", page)
		if code != 0 {
			t.Fatalf("%s: %s", name, stderr)
		}
		var rep analyzeReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--no-first-run", "--user-data-dir="+filepath.Join(dir, "profile-"+name),
			"--dump-dom", "file://"+page)
		dom, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: chromium: %v", name, err)
		}
		bars := strings.Count(string(dom), `class="bar"`)
		if bars != len(rep.Layers) || !strings.Contains(string(dom), "<svg") {
			t.Errorf("%s: the browser shows %d bars for %d layers", name, bars, len(rep.Layers))
		}
		if _, err := os.Stat(page); err != nil {
			t.Fatal(err)
		}
	}
}

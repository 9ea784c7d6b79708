package ort_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/ort"
)

// residentMiB is the test process's resident set size.
func residentMiB(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return float64(pages*os.Getpagesize()) / (1 << 20)
}

// TestCloseReturnsMemory opens the zoo's ResNet-18 in four sessions, runs each, closes them, and
// checks that the process's resident memory falls back: glibc's malloc keeps what a closed
// session freed unless it is trimmed (before the trim, four ResNet-50 sessions left 680 of their
// 790 MiB resident), and a shrink opens sessions for every grid's result before its repair.
func TestCloseReturnsMemory(t *testing.T) {
	requireORT(t)
	if runtime.GOOS != "linux" {
		t.Skip("the trim is glibc's")
	}
	model := filepath.Join(testenv.ZooDir(), "resnet18.onnx")
	b, err := os.ReadFile(model)
	if err != nil {
		testenv.Missing(t, "%v (make zoo)", err)
	}
	before := residentMiB(t)
	var sessions []*ort.Session
	var runners []*ort.Runner
	for i := 0; i < 4; i++ {
		s, err := ort.OpenBytes(model, b, 2)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
		r, err := s.Runner(s.RandomTensors([][]int64{{1, 3, 224, 224}}, 1))
		if err != nil {
			t.Fatal(err)
		}
		runners = append(runners, r)
		if _, err := r.Once(); err != nil {
			t.Fatal(err)
		}
	}
	open := residentMiB(t)
	for i := range sessions {
		runners[i].Close()
		sessions[i].Close()
	}
	closed := residentMiB(t)
	t.Logf("resident: %.0f MiB before, %.0f with four sessions, %.0f after closing them", before, open, closed)
	if open-before < 100 {
		t.Fatalf("four ResNet-18 sessions took %.0f MiB; the test expects more", open-before)
	}
	if kept := (closed - before) / (open - before); kept > 0.25 {
		t.Errorf("%.0f%% of the sessions' memory stayed resident after they were closed", 100*kept)
	}
}

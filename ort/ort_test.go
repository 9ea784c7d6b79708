package ort_test

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
)

const resnet8 = "../models/resnet8.onnx"

func requireORT(t *testing.T) {
	t.Helper()
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
}

// maxRelErr is the largest |a-b| / (1 + |b|): relative for large values, absolute near zero.
func maxRelErr(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		e := math.Abs(float64(a[i])-float64(b[i])) / (1 + math.Abs(float64(b[i])))
		if e > worst || math.IsNaN(e) {
			worst = e
		}
	}
	return worst
}

// TestResNet8MatchesEngine runs the bundled ResNet-8 in ONNX Runtime through the binding and in
// chanopt's engine on 16 Fashion-MNIST images and on random inputs at several batches: equal
// outputs to 1e-4 show the function table's indices, the tensor layout and the threads setting
// are right.
func TestResNet8MatchesEngine(t *testing.T) {
	requireORT(t)
	m, err := onnx.Load(resnet8)
	if err != nil {
		t.Fatal(err)
	}
	p, err := engine.Compile(m, engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	images, err := npy.ReadFile("../models/data/eval16.npy")
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{0, 1, 2} {
		s, err := ort.Open(resnet8, threads)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Inputs) != 1 || len(s.Outputs) != 1 || len(s.InputShapes[0]) != 4 || s.InputInts[0] {
			t.Fatalf("resnet8: inputs %v %v, outputs %v: want one float input of 4 dims and one output", s.Inputs, s.InputShapes, s.Outputs)
		}
		random4, err := s.RandomInputs(4, 7)
		if err != nil {
			t.Fatal(err)
		}
		random1, err := s.RandomInputs(1, 8)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			in   ort.Tensor
		}{
			{"eval16", ort.Tensor{Shape: []int64{16, 1, 28, 28}, Data: images.Float32}},
			{"random batch 4", random4[0]},
			{"random batch 1", random1[0]},
		} {
			got, err := s.Run([]ort.Tensor{tc.in})
			if err != nil {
				t.Fatalf("%d threads, %s: %v", threads, tc.name, err)
			}
			shape := make([]int, len(tc.in.Shape))
			for i, d := range tc.in.Shape {
				shape[i] = int(d)
			}
			want, err := p.RunSlice(engine.NewTensor(shape, tc.in.Data))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || len(got[0].Data) != len(want[0].Data) || got[0].Shape[0] != tc.in.Shape[0] {
				t.Fatalf("%d threads, %s: ORT gave %d outputs of shape %v, engine %v", threads, tc.name, len(got), got[0].Shape, want[0].Shape)
			}
			if e := maxRelErr(got[0].Data, want[0].Data); e > 1e-4 {
				t.Errorf("%d threads, %s: ORT and engine differ by %.3g (relative)", threads, tc.name, e)
			}
		}
		s.Close()
		s.Close() // a second Close must be harmless
	}
}

// TestOpenBytesMatchesFile loads the same model from memory and from its file.
func TestOpenBytesMatchesFile(t *testing.T) {
	requireORT(t)
	b, err := os.ReadFile(resnet8)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := ort.Open(resnet8, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	fromBytes, err := ort.OpenBytes("resnet8 bytes", b, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer fromBytes.Close()
	in, err := fromFile.RandomInputs(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, err := fromFile.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fromBytes.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(a[0].Data, c[0].Data); e != 0 {
		t.Errorf("model from bytes differs from model from file by %.3g", e)
	}
}

// TestErrors checks bad input gives a one-line error that names the file and the cause (ONNX
// Runtime's own message where it found the problem), never a crash.
func TestErrors(t *testing.T) {
	requireORT(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a protobuf\n\x01\x02"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	whole, err := os.ReadFile(resnet8)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, whole[:len(whole)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(path string) func() error {
		return func() error {
			s, err := ort.Open(path, 1)
			if err == nil {
				s.Close()
			}
			return err
		}
	}
	run := func(in []ort.Tensor) func() error {
		return func() error {
			s, err := ort.Open(resnet8, 1)
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.Run(in)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want []string // substrings of the error
	}{
		{"missing file", open(filepath.Join(dir, "missing.onnx")), []string{"missing.onnx", "NO_SUCHFILE"}},
		{"garbage file", open(garbage), []string{"garbage.onnx", "INVALID_PROTOBUF", "Protobuf parsing failed"}},
		{"truncated file", open(truncated), []string{"truncated.onnx", "Protobuf parsing failed"}},
		{"garbage bytes", func() error {
			_, err := ort.OpenBytes("junk", []byte("junk"), 1)
			return err
		}, []string{"junk", "INVALID_PROTOBUF"}},
		{"no bytes", func() error {
			_, err := ort.OpenBytes("nothing", nil, 1)
			return err
		}, []string{"nothing", "empty model"}},
		{"negative threads", func() error {
			_, err := ort.Open(resnet8, -1)
			return err
		}, []string{"resnet8.onnx", "-1 threads"}},
		{"no inputs", run(nil), []string{"resnet8.onnx", "0 inputs given, model has 1"}},
		{"data shorter than shape", run([]ort.Tensor{{Shape: []int64{1, 1, 28, 28}, Data: make([]float32, 10)}}),
			[]string{"input input", "784 elements, data has 10"}},
		{"wrong image size", run([]ort.Tensor{{Shape: []int64{1, 1, 14, 14}, Data: make([]float32, 196)}}),
			[]string{"resnet8.onnx", "run", "INVALID_ARGUMENT"}},
		{"int data for a float input", run([]ort.Tensor{{Shape: []int64{1, 1, 28, 28}, Ints: make([]int64, 784)}}),
			[]string{"resnet8.onnx", "INVALID_ARGUMENT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
}

// TestTime checks timed runs give a consistent summary and honour the run count and budget.
func TestTime(t *testing.T) {
	requireORT(t)
	s, err := ort.Open(resnet8, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, err := s.RandomInputs(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []ort.TimeOptions{{Warmup: 2, Runs: 7}, {Warmup: 1, Runs: 3, Budget: 100 * time.Millisecond}} {
		tm, err := s.Time(in, opt)
		if err != nil {
			t.Fatal(err)
		}
		if tm.Runs < opt.Runs || (opt.Budget == 0 && tm.Runs != opt.Runs) {
			t.Errorf("%+v: %d runs", opt, tm.Runs)
		}
		if !(0 < tm.Min && tm.Min <= tm.Q1 && tm.Q1 <= tm.Median && tm.Median <= tm.Q3 && tm.Q3 <= tm.Max) {
			t.Errorf("%+v: timing out of order: %+v", opt, tm)
		}
	}
	tm, err := ort.Latency(resnet8, 1, 1, ort.TimeOptions{Warmup: 1, Runs: 5})
	if err != nil || tm.Runs != 5 || tm.Median <= 0 {
		t.Errorf("Latency: %+v, %v", tm, err)
	}
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		in                 []time.Duration
		median, q1, q3, sp time.Duration
	}{
		{nil, 0, 0, 0, 0},
		{ms(5), 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond, 0},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond, 1750 * time.Microsecond, 3250 * time.Microsecond, 750 * time.Microsecond},
		{ms(9, 1, 5, 1, 1), time.Millisecond, time.Millisecond, 5 * time.Millisecond, 2 * time.Millisecond},
	} {
		got := ort.Summarize(tc.in)
		if got.Median != tc.median || got.Q1 != tc.q1 || got.Q3 != tc.q3 || got.Spread() != tc.sp || got.Runs != len(tc.in) {
			t.Errorf("Summarize(%v) = %+v (spread %v), want median %v, q1 %v, q3 %v, spread %v", tc.in, got, got.Spread(), tc.median, tc.q1, tc.q3, tc.sp)
		}
	}
}

// TestUnavailable runs this test binary again with $CHANOPT_ORT_LIB naming a missing file, and with
// a file that is not a library: Available must say which library failed and why, and Open must
// fail with the same reason instead of crashing.
func TestUnavailable(t *testing.T) {
	if want := os.Getenv("CHANOPT_ORT_CHILD"); want == "found" {
		if err := ort.Available(); err != nil {
			t.Fatalf("Available() = %v with a library in the cache folder", err)
		}
		v, p := ort.Version()
		t.Logf("found ONNX Runtime %s at %s", v, p)
		return
	} else if want != "" {
		err := ort.Available()
		if err == nil {
			t.Fatal("Available() = nil with a broken library")
		}
		if !errors.Is(err, ort.ErrUnavailable) {
			t.Errorf("Available() = %v, does not wrap ErrUnavailable", err)
		}
		for _, w := range strings.Split(os.Getenv("CHANOPT_ORT_CHILD"), "|") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Available() = %q, does not say %q", err, w)
			}
		}
		if _, err := ort.Open(resnet8, 1); !errors.Is(err, ort.ErrUnavailable) {
			t.Errorf("Open without a library: %v", err)
		}
		if v, p := ort.Version(); v != "" || p != "" {
			t.Errorf("Version() = %q, %q with no library loaded", v, p)
		}
		return
	}
	dir := t.TempDir()
	notALibrary := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(notALibrary, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, lib string
		want      []string
	}{
		{"missing file", filepath.Join(dir, "missing", "libonnxruntime.so.1"), []string{"CHANOPT_ORT_LIB", "missing/libonnxruntime.so.1", "not found"}},
		{"not a library", notALibrary, []string{"CHANOPT_ORT_LIB", notALibrary, "load"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			child(t, "CHANOPT_ORT_LIB="+tc.lib, "CHANOPT_ORT_CHILD="+strings.Join(tc.want, "|"))
		})
	}
	// Without $CHANOPT_ORT_LIB the library is found where `make ort` installs it.
	if lib := os.Getenv(ort.EnvLibrary); lib != "" {
		home := t.TempDir()
		dir := filepath.Join(home, ".cache", "chanopt", "ort-1.30.0", "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", "x64")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(lib, filepath.Join(dir, "libonnxruntime.so.1")); err != nil {
			t.Fatal(err)
		}
		t.Run("found in the cache folder", func(t *testing.T) {
			child(t, "CHANOPT_ORT_LIB=", "HOME="+home, "XDG_CACHE_HOME=", "CHANOPT_ORT_CHILD=found")
		})
	}
}

// child runs TestUnavailable in a new process with extra environment.
func child(t *testing.T, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailable$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestUnavailable") {
		t.Errorf("child test failed: %v\n%s", err, out)
	}
}

// TestProfileRuns profiles a real model: one entry per timed run (warm-up runs dropped, the run
// count capped by MaxRuns), each with the model's convolutions timed, and the same nodes in every
// run.
func TestProfileRuns(t *testing.T) {
	requireORT(t)
	model, err := os.ReadFile(resnet8)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.Open(resnet8, 1)
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.RandomInputs(2, 1)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	runs, err := ort.ProfileRuns("resnet8", model, 1, in, ort.TimeOptions{Warmup: 2, Runs: 4, Budget: time.Second, MaxRuns: 6})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 6 {
		t.Fatalf("%d runs, want 6 (MaxRuns within the budget)", len(runs))
	}
	names := func(r []ort.NodeTime) []string {
		var out []string
		for _, n := range r {
			out = append(out, n.Node)
		}
		return out
	}
	convs := 0
	for _, n := range runs[0] {
		if n.Op == "Conv" {
			convs++
			if n.Dur <= 0 {
				t.Errorf("node %s: no kernel time", n.Node)
			}
		}
	}
	if convs < 7 { // resnet8's seven convolutions (ONNX Runtime may fuse what follows them, not them)
		t.Errorf("%d Conv nodes timed in a run, want at least 7: %v", convs, names(runs[0]))
	}
	for i, r := range runs[1:] {
		if !slices.Equal(names(r), names(runs[0])) {
			t.Errorf("run %d timed %v, run 0 %v", i+1, names(r), names(runs[0]))
		}
	}
}

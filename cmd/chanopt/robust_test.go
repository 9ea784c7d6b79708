package main

// Regression tests for issue 16: the CLI tried as a careless or hostile user would. Every case
// checks that the inputs are byte-identical afterwards, that a failure is one line with the right
// exit code and writes nothing, and that no temporary file is left behind.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chanopt/chanopt/dataset/npy"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// TestMain lets a test run the chanopt binary's main in a child process (for signals and for
// inputs that may exhaust memory): the test binary re-executes itself with CHANOPT_MAIN_ARGS.
func TestMain(m *testing.M) {
	if args := os.Getenv("CHANOPT_MAIN_ARGS"); args != "" {
		os.Exit(run(append([]string{"chanopt"}, strings.Split(args, "\x1f")...), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// childCLI starts chanopt in a child process in dir.
func childCLI(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "CHANOPT_MAIN_ARGS="+strings.Join(args, "\x1f"))
	cmd.Dir = dir
	return cmd
}

// robustFiles are the small files the cases read, made in a fresh directory.
type robustFiles struct {
	dir                                   string
	model, fixed, ext, extData            string
	images, labels, badLabels, input, bad string
}

// idxImages writes n random-ish 28×28 grey images as gzipped IDX.
func idxImages(t *testing.T, path string, n int) {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint32{0x803, uint32(n), 28, 28})
	for i := 0; i < n*28*28; i++ {
		b.WriteByte(byte(i*7919 + i/28*31))
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b.Bytes())
	w.Close()
	if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func idxLabels(t *testing.T, path string, labels []byte) {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint32{0x801, uint32(len(labels))})
	b.Write(labels)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRobustFiles(t *testing.T) *robustFiles {
	t.Helper()
	dir := t.TempDir()
	f := &robustFiles{dir: dir}
	src, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	f.model = write(t, dir, "in.onnx", src)
	write(t, dir, "tiny.onnx", tinyModel(t, []int64{0, 1, 0, 0}, "Relu"))
	// The same model exported with a batch fixed at 1, as most exporters write it.
	mp, err := onnx.Decode(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range append(append([]*pb.ValueInfoProto(nil), mp.Graph.Input...), mp.Graph.Output...) {
		v.Type.GetTensorType().Shape.Dim[0].Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: 1}
	}
	fb, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	f.fixed = write(t, dir, "fixed.onnx", fb)
	// The same model with its initializers in an external data file.
	f.ext = filepath.Join(dir, "ext.onnx")
	if err := onnx.WriteFile(f.ext, mp, onnx.WriteOptions{ExternalDataThreshold: 1, ExternalDataFile: "ext.data"}); err != nil {
		t.Fatal(err)
	}
	f.extData = filepath.Join(dir, "ext.data")
	if _, err := os.Stat(f.extData); err != nil {
		t.Fatal(err)
	}
	f.images = filepath.Join(dir, "calib.gz")
	idxImages(t, f.images, 40)
	labels := make([]byte, 40)
	for i := range labels {
		labels[i] = byte(i % 10)
	}
	f.labels = filepath.Join(dir, "lab.idx")
	idxLabels(t, f.labels, labels)
	labels[7] = 200
	f.badLabels = filepath.Join(dir, "bad.idx")
	idxLabels(t, f.badLabels, labels)
	f.input = filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(f.input, &npy.Array{Shape: []int{1, 1, 28, 28}, Float32: make([]float32, 28*28)}); err != nil {
		t.Fatal(err)
	}
	// Opset 99: newer than any op set chanopt knows.
	mp.OpsetImport[0].Version = proto.Int64(99)
	mp.Graph.Input[0].Type.GetTensorType().Shape.Dim[0].Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
	ob, _ := proto.Marshal(mp)
	f.bad = write(t, dir, "opset99.onnx", ob)
	return f
}

// snapshot maps every file under dir (relative name) to its hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	return out
}

// checkAfter: every file of before is unchanged, and the only new files are want.
func checkAfter(t *testing.T, dir string, before map[string]string, want ...string) {
	t.Helper()
	after := snapshot(t, dir)
	for name, h := range before {
		if after[name] != h {
			t.Errorf("%s changed or vanished", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; ok {
			continue
		}
		if !contains(want, name) {
			t.Errorf("unexpected file %s left behind", name)
		}
	}
	for _, w := range want {
		if _, ok := after[w]; !ok {
			t.Errorf("%s was not written", w)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkOneLine: stderr is one "chanopt: " line containing want, without a Go trace.
func checkOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "chanopt: ") {
		t.Errorf("want one chanopt: line, got %q", stderr)
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") || strings.Contains(stderr, "internal error") {
		t.Errorf("Go trace or internal error: %q", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("error %q does not say %q", stderr, want)
	}
}

// TestRobustFailures holds the cases of issue 16 that must fail: before any work, with one line,
// nothing written and every input intact. Paths are relative to the files' directory.
func TestRobustFailures(t *testing.T) {
	f := newRobustFiles(t)
	if err := os.Mkdir(filepath.Join(f.dir, "outdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// --allow-slower: these cases test files, flags and signals, not speed (a timed tie in ONNX
	// Runtime must not fail them).
	S := []string{"--macs", "0.5", "--no-distill", "--search", "uniform", "-q", "--allow-slower"}
	shrink := func(args ...string) []string { return append(append([]string{"shrink"}, args...), S...) }
	cases := []struct {
		name string
		args []string
		code int
		want string // in the error
	}{
		{"1 report over the model", shrink("in.onnx", "-o", "out.onnx", "--report", "in.onnx"), 1, "the model"},
		{"2 report over the output", shrink("in.onnx", "-o", "out.onnx", "--report", "out.onnx"), 1, "of the same run"},
		{"2 report over the output by another path", shrink("in.onnx", "-o", "out.onnx", "--report", "./outdir/../out.onnx"), 1, "of the same run"},
		{"3 output over external data", shrink("ext.onnx", "-o", "ext.data"), 1, "external data"},
		{"3 report over external data", shrink("ext.onnx", "-o", "out.onnx", "--report", "ext.data"), 1, "external data"},
		{"4 run output over the model", []string{"run", "in.onnx", "--input", "x.npy", "-o", "in.onnx"}, 1, "the model"},
		{"4 run output over the input", []string{"run", "in.onnx", "--input", "x.npy", "-o", "x.npy"}, 1, "--input"},
		{"5 output over the data", shrink("in.onnx", "--data", "calib.gz", "-o", "calib.gz"), 1, "--data"},
		{"5 report over the labels", shrink("in.onnx", "--data", "calib.gz", "--labels", "lab.idx", "--report", "lab.idx", "-o", "out.onnx"), 1, "--labels"},
		{"6 synthetic 1e9", []string{"shrink", "in.onnx", "--macs", "0.5", "--synthetic", "1000000000"}, 2, "--synthetic"},
		{"8 labels out of range, shrink", shrink("in.onnx", "--data", "calib.gz", "--labels", "bad.idx", "-o", "out.onnx"), 1, "label 200 of image 7"},
		{"8 labels out of range, shrink with repair", []string{"shrink", "in.onnx", "--macs", "0.5", "--data", "calib.gz", "--labels", "bad.idx", "-o", "out.onnx"}, 1, "label 200 of image 7"},
		{"8 labels out of range, eval", []string{"eval", "in.onnx", "--data", "calib.gz", "--labels", "bad.idx"}, 1, "label 200 of image 7"},
		{"8 labels out of range, analyze", []string{"analyze", "in.onnx", "--data", "calib.gz", "--labels", "bad.idx", "-q"}, 1, "label 200 of image 7"},
		{"9 report into a missing directory", shrink("in.onnx", "-o", "out.onnx", "--report", "nodir/r.json"), 1, "does not exist"},
		{"9 report is a directory", shrink("in.onnx", "-o", "out.onnx", "--report", "outdir"), 1, "is a directory"},
		{"11 output is a directory", shrink("in.onnx", "-o", "outdir"), 1, "is a directory"},
		{"12 output into a missing directory", shrink("in.onnx", "-o", "nodir/out.onnx"), 1, "does not exist"},
		{"12 output under a file", shrink("in.onnx", "-o", "in.onnx/out.onnx"), 1, "not a directory"},
		{"12 plot into a missing directory", []string{"analyze", "in.onnx", "--plot", "nodir/p.svg", "-q"}, 1, "does not exist"},
		{"15 opset 99", []string{"inspect", "opset99.onnx"}, 1, "opset"},
		{"15 opset 99, shrink", shrink("opset99.onnx", "-o", "out.onnx"), 1, "opset"},
		{"16 synthetic 0", []string{"shrink", "in.onnx", "--macs", "0.5", "--synthetic", "0"}, 2, "--synthetic"},
		{"16 synthetic -1", []string{"shrink", "in.onnx", "--macs", "0.5", "--synthetic", "-1"}, 2, "--synthetic"},
		{"16 iterations -1", []string{"shrink", "in.onnx", "--macs", "0.5", "--iterations", "-1"}, 2, "--iterations"},
		{"16 round-to 0", []string{"shrink", "in.onnx", "--macs", "0.5", "--round-to", "0"}, 2, "--round-to"},
		{"16 round-to -1", []string{"shrink", "in.onnx", "--macs", "0.5", "--round-to", "-1"}, 2, "--round-to"},
		{"16 threads -1", []string{"shrink", "in.onnx", "--macs", "0.5", "--threads", "-1"}, 2, "--threads"},
		{"16 threads -1, eval", []string{"eval", "in.onnx", "--data", "calib.gz", "--labels", "lab.idx", "--threads", "-1"}, 2, "--threads"},
		{"16 epochs -1", []string{"shrink", "in.onnx", "--macs", "0.5", "--epochs", "-1"}, 2, "--epochs"},
		{"16 epochs Inf", []string{"shrink", "in.onnx", "--macs", "0.5", "--epochs", "Inf"}, 2, "--epochs"},
		{"16 lr NaN", []string{"shrink", "in.onnx", "--macs", "0.5", "--lr", "NaN"}, 2, "--lr"},
		{"16 lr -1", []string{"shrink", "in.onnx", "--macs", "0.5", "--lr", "-1"}, 2, "--lr"},
		{"16 macs NaN", []string{"shrink", "in.onnx", "--macs", "NaN"}, 2, "--macs"},
		{"16 search-time 0s", []string{"shrink", "in.onnx", "--macs", "0.5", "--search-time", "0s"}, 2, "--search-time"},
		{"16 search-time -1s", []string{"shrink", "in.onnx", "--macs", "0.5", "--search-time", "-1s"}, 2, "--search-time"},
		{"16 time -1s", []string{"shrink", "in.onnx", "--macs", "0.5", "--time", "-1s"}, 2, "or 0 for no bound"},
		{"16 distill-time 0s", []string{"shrink", "in.onnx", "--macs", "0.5", "--distill-time", "0s"}, 2, "--distill-time"},
		{"16 samples 0", shrink("in.onnx", "--data", "calib.gz", "--samples", "0"), 2, "--samples"},
		{"16 samples -5", []string{"eval", "in.onnx", "--data", "calib.gz", "--labels", "lab.idx", "--samples", "-5"}, 2, "--samples"},
		{"16 batch 0", []string{"eval", "in.onnx", "--data", "calib.gz", "--labels", "lab.idx", "--batch", "0"}, 2, "--batch"},
		{"16 batch huge", []string{"bench", "in.onnx", "--batch", "100000000"}, 2, "--batch"},
		{"16 batch too large for the input", []string{"bench", "tiny.onnx", "--batch", "64", "--input-shape", "x:1,1,4096,4096"}, 2, "more than"},
		{"16 input-shape unknown input", []string{"shrink", "in.onnx", "--macs", "0.5", "--input-shape", "nosuch:1,1,28,28"}, 2, "no input \"nosuch\""},
		{"16 input-shape contradicts a fixed dim", []string{"inspect", "in.onnx", "--input-shape", "input:1,1,4,4"}, 2, "fixed at 28"},
		{"16 input-shape too large", []string{"inspect", "in.onnx", "--input-shape", "input:100000,1,28,28000"}, 2, "more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, f.dir)
			chdir(t, f.dir)
			code, _, stderr := runCLI(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (%s)", code, c.code, strings.TrimSpace(stderr))
			}
			checkOneLine(t, stderr, c.want)
			checkAfter(t, f.dir, before)
		})
	}
}

// chdir changes to dir for the test (the cases use relative paths, as users do).
func chdir(t *testing.T, dir string) {
	t.Helper()
	old, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(old) })
}

// TestRobustSuccesses holds the cases of issue 16 that must work: a long output name (13), a
// fixed-batch model with data, eval, analyze and bench (14), a link to an input refused (1).
func TestRobustSuccesses(t *testing.T) {
	f := newRobustFiles(t)
	chdir(t, f.dir)
	long := strings.Repeat("n", 245) + ".onnx" // 250 bytes, legal on every common file system
	t.Run("13 a 250-byte output name", func(t *testing.T) {
		before := snapshot(t, f.dir)
		code, _, stderr := runCLI("shrink", "in.onnx", "--macs", "0.5", "--no-distill", "--search", "uniform", "-q", "--allow-slower", "-o", long)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkAfter(t, f.dir, before, long)
		os.Remove(long)
	})
	t.Run("1 a link to the model as the report", func(t *testing.T) {
		if err := os.Symlink("in.onnx", "link.json"); err != nil {
			t.Fatal(err)
		}
		defer os.Remove("link.json")
		before := snapshot(t, f.dir)
		code, _, stderr := runCLI("shrink", "in.onnx", "--macs", "0.5", "--no-distill", "-q", "--allow-slower", "-o", "out.onnx", "--report", "link.json")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		checkOneLine(t, stderr, "the model")
		checkAfter(t, f.dir, before)
	})
	t.Run("14 fixed batch: eval", func(t *testing.T) {
		code, out, stderr := runCLI("eval", "fixed.onnx", "--data", "calib.gz", "--labels", "lab.idx", "--teacher", "in.onnx", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var rep evalReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Images != 40 || rep.Agree == nil || rep.Agree.Top1 != 1 {
			t.Errorf("fixed-batch model disagrees with its symbolic-batch twin: %s", out)
		}
	})
	t.Run("14 fixed batch: analyze and bench", func(t *testing.T) {
		if code, _, stderr := runCLI("analyze", "fixed.onnx", "--data", "calib.gz", "-q", "--json"); code != 0 {
			t.Errorf("analyze: exit %d: %s", code, stderr)
		}
		if code, _, stderr := runCLI("bench", "fixed.onnx", "--batch", "4", "--time", "50ms"); code != 0 {
			t.Errorf("bench: exit %d: %s", code, stderr)
		}
	})
	t.Run("14 fixed batch: shrink with data keeps the fixed dims", func(t *testing.T) {
		// --allow-slower: the case is about the fixed dims; on a net this small the latency proof
		// can time the two models alike (0.116 against 0.115 ms once in CI) and exit SLOWER.
		code, _, stderr := runCLI("shrink", "fixed.onnx", "--macs", "0.5", "--search", "uniform", "--epochs", "0.2",
			"--data", "calib.gz", "--allow-slower", "-q", "-o", "fs.onnx")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		defer os.Remove("fs.onnx")
		m, err := onnx.Load("fs.onnx")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range append(append([]string(nil), m.Graph.Inputs...), m.Graph.Outputs...) {
			if s := m.Graph.Values[name].Shape; len(s) == 0 || s[0].Size != 1 {
				t.Errorf("%s: shape %v, want the fixed batch of 1 kept", name, s)
			}
		}
	})
	t.Run("3 external data: the output is self-contained", func(t *testing.T) {
		if err := os.Mkdir("elsewhere", 0o755); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, f.dir)
		// --allow-slower: the case is about external data; this net runs in 0.14 ms at batch 1,
		// where the proof once timed the slim model 2% slower in CI (0.144 against 0.141 ms).
		code, _, stderr := runCLI("shrink", "ext.onnx", "--macs", "0.5", "--no-distill", "--allow-slower", "-q", "-o", "elsewhere/e.onnx")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkAfter(t, f.dir, before, filepath.Join("elsewhere", "e.onnx"))
		if _, err := onnx.Load("elsewhere/e.onnx"); err != nil {
			t.Errorf("output does not load on its own: %v", err)
		}
	})
}

// TestConcurrentRunsCommitTogether (17): runs writing the same model and report at once leave a
// model and a report of the same run.
func TestConcurrentRunsCommitTogether(t *testing.T) {
	f := newRobustFiles(t)
	ratios := []string{"0.3", "0.5", "0.7", "0.9"}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for _, r := range ratios {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, stderr := runCLI("shrink", f.model, "--macs", r, "--no-distill", "--search", "uniform", "-q", "--allow-slower",
					"-o", filepath.Join(f.dir, "out.onnx"), "--report", filepath.Join(f.dir, "out.json"))
				if code != 0 {
					t.Errorf("--macs %s: %s", r, stderr)
				}
			}()
		}
		wg.Wait()
		m, err := onnx.Load(filepath.Join(f.dir, "out.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		rb, err := os.ReadFile(filepath.Join(f.dir, "out.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rep shrinkReport
		if err := json.Unmarshal(rb, &rep); err != nil {
			t.Fatal(err)
		}
		shapes, _ := onnx.BatchOne(m.Graph, nil)
		if got := mustMACs(t, m, shapes); got != rep.After.MACs {
			t.Fatalf("round %d: the model has %d MACs, its report says %d: model and report come from different runs", round, got, rep.After.MACs)
		}
	}
	names, _ := filepath.Glob(filepath.Join(f.dir, ".chanopt-*"))
	if len(names) > 0 {
		t.Errorf("temporary files left: %v", names)
	}
}

// TestModelStreamIsBounded (7): an endless stream as the model is refused with one line, in a
// child process so that a failure cannot take the test binary down.
func TestModelStreamIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := childCLI(ctx, t.TempDir(), "inspect", "/dev/zero")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if ctx.Err() != nil {
		t.Fatalf("still reading /dev/zero after 20 s: %v", err)
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	checkOneLine(t, stderr.String(), "/dev/zero")
}

// TestSignalRemovesTemporaries (10): SIGINT and SIGTERM during a run exit 130 and 143 with one
// line, and leave no output and no temporary file.
func TestSignalRemovesTemporaries(t *testing.T) {
	f := newRobustFiles(t)
	for _, c := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{{syscall.SIGINT, 130, "SIGINT"}, {syscall.SIGTERM, 143, "SIGTERM"}} {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, f.dir)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// A data-free shrink with fine-tuning runs for a minute: long enough to be interrupted.
			cmd := childCLI(ctx, f.dir, "shrink", "in.onnx", "--macs", "0.5", "-q", "-o", "out.onnx", "--report", "r.json")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond)
			cmd.Process.Signal(c.sig)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != c.code {
				t.Errorf("exit %d, want %d (%s)", code, c.code, stderr.String())
			}
			checkOneLine(t, stderr.String(), c.name)
			checkAfter(t, f.dir, before)
		})
	}
}

// TestPlanCommitsAllOrNothing: when one output cannot be written at commit time (its directory
// vanished), no output is renamed into place and no temporary file is left.
func TestPlanCommitsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	var p outputPlan
	a, b := filepath.Join(dir, "a.json"), filepath.Join(sub, "b.json")
	for _, o := range []string{a, b} {
		if err := p.output("-o", o); err != nil {
			t.Fatal(err)
		}
	}
	p.set(a, []byte("a"))
	p.set(b, []byte("b"))
	os.Remove(sub)
	if err := p.commit(false); err == nil {
		t.Fatal("commit into a removed directory succeeded")
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestShrinkTrainingIsDeterministic: a shrink with data and fine-tuning gives the same bytes twice
// at --threads 2, and the same at --threads 1: the conv weight gradients sum per-chunk partials in
// a fixed order over at least four chunks, so any thread count up to four gives the same sums.
func TestShrinkTrainingIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(testenv.ModelsDir(t), "data", "calib-images-idx3-ubyte.gz")
	src := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	var outs [][]byte
	for i, threads := range []string{"2", "2", "1"} {
		out := filepath.Join(dir, fmt.Sprintf("r%d.onnx", i))
		// --round-to and --allow-slower take timing out: a grid chosen by timing may differ
		// between runs (shrink then says "not repeatable"), and a tie in the latency proof of a
		// net this small once exited SLOWER in CI (0.217 against 0.155 ms under load).
		code, _, stderr := runCLI("shrink", src, "--macs", "0.5", "--epochs", "1", "--search", "uniform", "--samples", "400",
			"--data", data, "--threads", threads, "--round-to", "1", "--allow-slower", "-q", "-o", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two runs with the same seed, data and --threads 2 wrote different bytes")
	}
	if !bytes.Equal(outs[0], outs[2]) {
		t.Error("--threads 1 and --threads 2 wrote different bytes")
	}
}

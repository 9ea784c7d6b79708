package main

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// net64 writes an RGB 64×64 network made from the bundled resnet8: its first conv reads three
// channels (the grey weights spread over them) and its input is N×3×64×64. Its global pooling
// makes the rest of the network size-agnostic.
func net64(t *testing.T, path string) { rgbNet(t, path, onnx.D(64), onnx.D(64)) }

// rgbNet writes net64 with the given height and width dims (symbolic ones make a model whose
// images set its size).
func rgbNet(t *testing.T, path string, h, w onnx.Dim) {
	t.Helper()
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	in := g.Inputs[0]
	for _, n := range g.Nodes {
		if n.OpType != "Conv" || n.Inputs[0] != in {
			continue
		}
		w := g.Inits[n.Inputs[1]]
		if len(w.Dims) != 4 || w.Dims[1] != 1 {
			t.Fatalf("first conv weight %v, want C_in 1", w.Dims)
		}
		var rgb []float32
		k := int(w.Dims[2] * w.Dims[3])
		for o := 0; o < int(w.Dims[0]); o++ {
			for c := 0; c < 3; c++ {
				for i := 0; i < k; i++ {
					rgb = append(rgb, w.Floats[o*k+i]/3)
				}
			}
		}
		w.Dims[1], w.Floats = 3, rgb
		if v := g.Values[n.Inputs[1]]; v != nil {
			v.Shape = w.Shape()
		}
	}
	g.Values[in].Shape = onnx.Shape{g.Values[in].Shape[0], {Size: 3}, h, w}
	if err := onnx.Save(path, m, onnx.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// photos64 writes n 64×64 RGB PNGs of smooth random patterns into dir.
func photos64(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for k := 0; k < n; k++ {
		a, b := k*37%97, k*61%89
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				img.Set(x, y, color.RGBA{uint8(x*a/16 + y*3), uint8(y*b/16 + x), uint8((x*y + k*13) % 256), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%04d.png", k)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// TestShrinkMemoryAndSilence runs `shrink --data` on a generated RGB 64×64 net in a child process,
// as a user would, with 200 and with 800 images: the peak memory must not grow with the images
// (within 10%: memory is bounded by the model), and stderr must never be silent for more than 5 s.
// Latency is measured in the engine and may end slower (so tiny a net is no faster in ONNX
// Runtime at batch 1): the test is about memory and progress.
func TestShrinkMemoryAndSilence(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "net64.onnx")
	net64(t, model)
	type run struct {
		peak    int64 // bytes
		silence time.Duration
		lines   []string
	}
	shrink := func(images int) run {
		data := filepath.Join(dir, fmt.Sprintf("photos%d", images))
		photos64(t, data, images)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := childCLI(ctx, dir, "shrink", model, "--macs", "0.5", "--data", data, "--epochs", "1",
			"--search-time", "20s", "--runtime", "engine", "--allow-slower",
			"-o", filepath.Join(dir, fmt.Sprintf("slim%d.onnx", images)))
		// A lower GC target brings the peak RSS close to the live heap, so that the comparison
		// measures what is kept, not when the collector happened to run.
		cmd.Env = append(cmd.Env, "GOGC=25")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var r run
		last := start
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.silence = max(r.silence, time.Since(last))
			last = time.Now()
			r.lines = append(r.lines, sc.Text())
		}
		err = cmd.Wait()
		r.silence = max(r.silence, time.Since(last))
		if err != nil {
			t.Fatalf("%d images: %v\n%s", images, err, strings.Join(r.lines, "\n"))
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			t.Fatal("no resource usage for the child")
		}
		r.peak = ru.Maxrss * 1024
		t.Logf("%d images: peak RSS %.1f MiB, longest silence %v, %d lines, %v", images, float64(r.peak)/(1<<20),
			r.silence.Round(time.Millisecond), len(r.lines), time.Since(start).Round(time.Second))
		return r
	}
	small, large := shrink(200), shrink(800)
	if float64(large.peak) > 1.1*float64(small.peak) {
		t.Errorf("peak memory grows with the images: %.1f MiB with 200, %.1f MiB with 800",
			float64(small.peak)/(1<<20), float64(large.peak)/(1<<20))
	}
	for _, r := range []run{small, large} {
		if r.silence > 5*time.Second {
			t.Errorf("stderr was silent for %v:\n%s", r.silence, strings.Join(r.lines, "\n"))
		}
	}
}

// TestForeignClassFolders: class folders that are not the model's classes (2 folders, 10 outputs)
// give agreement only, with a line saying why, never an accuracy over unrelated indices.
func TestForeignClassFolders(t *testing.T) {
	dir := t.TempDir()
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for _, class := range []string{"cats", "dogs"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 12; k++ {
			for i := range img.Pix {
				img.Pix[i] = uint8(i*k + len(class))
			}
			f, err := os.Create(filepath.Join(dir, class, fmt.Sprintf("%d.png", k)))
			if err != nil {
				t.Fatal(err)
			}
			png.Encode(f, img)
			f.Close()
		}
	}
	model := filepath.Join(testenv.ModelsDir(t), "resnet8.onnx")
	code, stdout, stderr := runCLI("eval", model, "--data", dir, "--teacher", model)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "not its classes") || strings.Contains(stdout, "accuracy") || !strings.Contains(stdout, "agreement") {
		t.Errorf("stdout %q, stderr %q: want agreement only and a line saying the folders are not the model's classes", stdout, stderr)
	}
}

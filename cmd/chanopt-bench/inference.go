package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
)

// benchInference: engine vs ONNX Runtime throughput on the bundled ResNet at batch 1 and 32, both
// on 2 threads, measured back to back in this process.
func benchInference(env *benchEnv) error {
	path := filepath.Join(env.models, "resnet8.onnx")
	m, err := onnx.Load(path)
	if err != nil {
		return err
	}
	p, err := engine.Compile(m, engine.Options{Threads: 2})
	if err != nil {
		return err
	}
	defer p.Close()
	s, err := ort.Open(path, 2)
	if err != nil {
		return fmt.Errorf("ONNX Runtime: %v (run make ort)", err)
	}
	defer s.Close()
	for _, batch := range []int{1, 32} {
		x := make([]float32, batch*28*28)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range x {
			x[i] = rng.Float32()
		}
		in := engine.NewTensor([]int{batch, 1, 28, 28}, x)
		runs := 400 / batch
		if runs < 30 {
			runs = 30
		}
		eng, err := median(runs, func() error { _, err := p.RunSlice(in); return err })
		if err != nil {
			return err
		}
		ot := []ort.Tensor{{Shape: []int64{int64(batch), 1, 28, 28}, Data: x}}
		rt, err := median(runs, func() error { _, err := s.Run(ot); return err })
		if err != nil {
			return err
		}
		fmt.Printf("   resnet8 batch %-2d: chanopt %s (%.0f img/s), ONNX Runtime %s (%.0f img/s): throughput ratio %.2fx (target ≥ 0.5x at batch 32)\n",
			batch, ms(eng), float64(batch)/eng.Seconds(), ms(rt), float64(batch)/rt.Seconds(), rt.Seconds()/eng.Seconds())
	}
	fmt.Printf("   peak memory of this process so far: %s\n", peakRSS())
	return nil
}

// peakRSS reads the process's high-water resident set size.
func peakRSS() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), "VmHWM:"))
		}
	}
	return "unknown"
}

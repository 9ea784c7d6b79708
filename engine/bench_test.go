package engine

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/ort"
)

// benchModel is models/resnet8.onnx, or $CHANOPT_BENCH_MODEL.
func benchModel(b *testing.B) string {
	if p := os.Getenv("CHANOPT_BENCH_MODEL"); p != "" {
		return p
	}
	p := filepath.Join(testenv.ModelsDir(b), "resnet8.onnx")
	if _, err := os.Stat(p); err != nil {
		b.Fatalf("bundled model: %v", err)
	}
	return p
}

// BenchmarkResNet8 measures the engine (and ONNX Runtime with 2 threads when built with -tags ort)
// on ResNet-8 at batch 1 and 32; images/s is the figure to compare.
func BenchmarkResNet8(b *testing.B) {
	path := benchModel(b)
	for _, batch := range []int{1, 32} {
		m, p := loadProgram(b, path, Options{Threads: 2})
		shape, err := inputShape(m, p.Inputs()[0], batch)
		if err != nil {
			b.Fatal(err)
		}
		x := randomInput(rand.New(rand.NewSource(1)), shape)
		b.Run(fmt.Sprintf("engine/batch%d", batch), func(b *testing.B) {
			if _, err := p.RunSlice(x); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.RunSlice(x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
		})
		b.Run(fmt.Sprintf("ort/batch%d", batch), func(b *testing.B) {
			if err := ort.Available(); err != nil {
				testenv.Missing(b, "ONNX Runtime: %v", err)
			}
			s, err := ort.Open(path, 2)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			in := []ort.Tensor{{Shape: int64s(shape), Data: x.Data}}
			if _, err := s.Run(in); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Run(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, d := range v {
		out[i] = int64(d)
	}
	return out
}

// TestNoAllocsAfterFirstRun checks the planned path allocates nothing.
func TestNoAllocsAfterFirstRun(t *testing.T) {
	for _, path := range modelsUnderTest(t) {
		m, p := loadProgram(t, path, Options{Threads: 2})
		shape, err := inputShape(m, p.Inputs()[0], 4)
		if err != nil {
			continue
		}
		x := randomInput(rand.New(rand.NewSource(1)), shape)
		if _, err := p.RunSlice(x); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := p.RunSlice(x); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run after the first", filepath.Base(path), allocs)
		}
	}
}

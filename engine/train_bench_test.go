package engine

import (
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// BenchmarkTrainStep measures one KD training step (forward, KL loss, backward, Adam) on
// models/resnet8.onnx (BN folded) and resnet8_bn.onnx (BN kept) at batch 64 with 2 threads; images/s is the figure to compare.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct{ file, mode string }{{"resnet8.onnx", "eval"}, {"resnet8_bn.onnx", "eval"}, {"resnet8_bn.onnx", "train"}} {
		m, err := onnx.Load(filepath.Join(testenv.ModelsDir(b), c.file))
		if err != nil {
			b.Fatal(err)
		}
		mode := c.mode
		b.Run(c.file+"/batch64/bn-"+mode, func(b *testing.B) {
			shape, err := trainShape(m, 64)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewSource(1))
			x := randTensor(rng, 0, 1, shape...)
			teacher := randTensor(rng, -3, 3, 64, 10)
			tr, err := NewTrainer(m.Clone(), TrainOptions{Threads: 2, SkipInputGrad: true, BNMode: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			opt := &Adam{}
			grad := &Tensor{}
			step := func() {
				y, err := tr.Forward(x)
				if err != nil {
					b.Fatal(err)
				}
				KLDivInto(grad, y, teacher, 2)
				tr.ZeroGrad()
				if err := tr.Backward(grad); err != nil {
					b.Fatal(err)
				}
				opt.Step(tr.Params(), 1e-5)
			}
			step()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step()
			}
			b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

package engine

import (
	"math/rand"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestScratchCPU(t *testing.T) {
	m, _ := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8_bn.onnx"))
	for _, th := range []int{1} {
		rng := rand.New(rand.NewSource(1))
		x := randTensor(rng, 0, 1, 64, 1, 28, 28)
		teacher := randTensor(rng, -3, 3, 64, 10)
		tr, _ := NewTrainer(m.Clone(), TrainOptions{Threads: th, SkipInputGrad: true, BNMode: "train"})
		opt := &Adam{}
		grad := &Tensor{}
		step := func() {
			y, _ := tr.Forward(x)
			KLDivInto(grad, y, teacher, 2)
			tr.ZeroGrad()
			tr.Backward(grad)
			opt.Step(tr.Params(), 1e-5)
		}
		step()
		c0, w0 := cpuNow(), time.Now()
		for i := 0; i < 40; i++ {
			step()
		}
		t.Logf("threads %d: cpu %v/step wall %v/step", th, (cpuNow()-c0)/40, time.Since(w0)/40)
		tr.Close()
	}
}

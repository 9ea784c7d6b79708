package engine

import (
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/ort"
)

// foreignNotRun lists the foreign-style models the inference engine does not run, and why.
var foreignNotRun = map[string]string{
	"bn_training_mode": "BatchNormalization in training mode normalises with batch statistics: a training graph, which the Trainer runs",
}

// TestForeignMatchORT runs the exports in other tools' styles (tf2onnx NHWC, opset 9/11 with
// Constant weights and symbolic spatial dims, HardSigmoid/HardSwish SE with LeakyRelu and Max, a
// detection head with ConvTranspose and Resize) at batch 2 and compares every output with ONNX
// Runtime to 1e-4 relative.
func TestForeignMatchORT(t *testing.T) {
	if err := ort.Available(); err != nil {
		testenv.Missing(t, "ONNX Runtime: %v", err)
	}
	ran := 0
	for _, f := range testenv.ForeignModels(t) {
		name := strings.TrimSuffix(filepath.Base(f.Path), ".onnx")
		if why, skip := foreignNotRun[name]; skip {
			t.Logf("%s: not run: %s", name, why)
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, p := loadProgram(t, f.Path, Options{})
			s, err := ort.Open(f.Path, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			shape := make([]int, len(f.InputShape))
			oshape := make([]int64, len(f.InputShape))
			for i, d := range f.InputShape {
				shape[i], oshape[i] = int(d), d
			}
			shape[0], oshape[0] = 2, 2
			x := randomInput(rand.New(rand.NewSource(3)), shape)
			got, err := p.RunSlice(x)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.Run([]ort.Tensor{{Shape: oshape, Data: x.Data}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				e := relErr(got[i].Data, want[i].Data)
				t.Logf("output %s: max relative error %.2g", p.Outputs()[i], e)
				if len(got[i].Data) != len(want[i].Data) || e > 1e-4 {
					t.Errorf("output %s differs from ONNX Runtime (relative %.3g)", p.Outputs()[i], e)
				}
			}
		})
		ran++
	}
	if ran < 5 {
		t.Errorf("only %d foreign-style models ran", ran)
	}
}

package interop

import (
	"fmt"
	"os"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"
)

// RunGorgonia decodes a model file with onnx-go and runs it once in the gorgonia backend on a
// float32 input of the given shape, returning the first output's values and shape.
func RunGorgonia(path string, shape []int, data []float32) ([]float32, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return runGorgonia(b, shape, data)
}

func runGorgonia(b []byte, shape []int, data []float32) (out []float32, outShape []int, err error) {
	defer func() {
		// onnx-go and gorgonia panic on some inputs; report that as an error of theirs.
		if r := recover(); r != nil {
			err = fmt.Errorf("onnx-go/gorgonia panicked: %v", r)
		}
	}()
	backend := gorgonnx.NewGraph()
	model := onnxgo.NewModel(backend)
	if err := model.UnmarshalBinary(b); err != nil {
		return nil, nil, fmt.Errorf("onnx-go: %w", err)
	}
	in := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), data...)))
	if err := model.SetInput(0, in); err != nil {
		return nil, nil, fmt.Errorf("onnx-go: set input: %w", err)
	}
	if err := backend.Run(); err != nil {
		return nil, nil, fmt.Errorf("gorgonia: %w", err)
	}
	outs, err := model.GetOutputTensors()
	if err != nil {
		return nil, nil, fmt.Errorf("onnx-go: outputs: %w", err)
	}
	if len(outs) == 0 {
		return nil, nil, fmt.Errorf("onnx-go: no outputs")
	}
	vals, ok := outs[0].Data().([]float32)
	if !ok {
		return nil, nil, fmt.Errorf("onnx-go: output is %T, not []float32", outs[0].Data())
	}
	return append([]float32(nil), vals...), append([]int(nil), outs[0].Shape()...), nil
}

//go:build ort

package ort

import (
	"fmt"
	"os"
	"sync"

	rt "github.com/yalue/onnxruntime_go"
)

var (
	initOnce sync.Once
	initErr  error
)

// Available reports whether ONNX Runtime can be loaded, initialising it once.
func Available() error {
	initOnce.Do(func() {
		lib := os.Getenv("CHANOPT_ORT_LIB")
		if lib == "" {
			initErr = fmt.Errorf("%w: CHANOPT_ORT_LIB is not set (run make ort)", ErrUnavailable)
			return
		}
		if _, err := os.Stat(lib); err != nil {
			initErr = fmt.Errorf("%w: %v", ErrUnavailable, err)
			return
		}
		rt.SetSharedLibraryPath(lib)
		if err := rt.InitializeEnvironment(); err != nil {
			initErr = fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	})
	return initErr
}

// Session is a loaded model.
type Session struct {
	s       *rt.DynamicAdvancedSession
	Inputs  []string
	Outputs []string
}

// Open loads a model file with the given number of intra-op threads (0: ONNX Runtime's default).
func Open(path string, threads int) (*Session, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ins, outs, err := rt.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", path, err)
	}
	s := &Session{}
	for _, i := range ins {
		s.Inputs = append(s.Inputs, i.Name)
	}
	for _, o := range outs {
		s.Outputs = append(s.Outputs, o.Name)
	}
	opts, err := rt.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, err
		}
		if err := opts.SetInterOpNumThreads(1); err != nil {
			return nil, err
		}
	}
	s.s, err = rt.NewDynamicAdvancedSession(path, s.Inputs, s.Outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", path, err)
	}
	return s, nil
}

// Run feeds the inputs (in the model's input order) and returns every output.
func (s *Session) Run(inputs []Tensor) ([]Tensor, error) {
	if len(inputs) != len(s.Inputs) {
		return nil, fmt.Errorf("ort: %d inputs given, model has %d", len(inputs), len(s.Inputs))
	}
	vals := make([]rt.Value, len(inputs))
	for i, in := range inputs {
		t, err := rt.NewTensor(rt.NewShape(in.Shape...), in.Data)
		if err != nil {
			return nil, err
		}
		defer t.Destroy()
		vals[i] = t
	}
	outs := make([]rt.Value, len(s.Outputs))
	if err := s.s.Run(vals, outs); err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	res := make([]Tensor, len(outs))
	for i, o := range outs {
		defer o.Destroy()
		t, ok := o.(*rt.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("ort: output %s is not a float32 tensor", s.Outputs[i])
		}
		res[i] = Tensor{Shape: append([]int64(nil), t.GetShape()...), Data: append([]float32(nil), t.GetData()...)}
	}
	return res, nil
}

// Close frees the session.
func (s *Session) Close() error { return s.s.Destroy() }

// Run loads a model, runs it once and closes it.
func Run(path string, inputs []Tensor) ([]Tensor, error) {
	s, err := Open(path, 0)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Run(inputs)
}

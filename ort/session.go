package ort

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Tensor is a float32 tensor passed to or returned by ONNX Runtime; an int64 tensor (token ids,
// shapes) sets Ints instead of Data.
type Tensor struct {
	Shape []int64
	Data  []float32
	Ints  []int64
}

// elements is the number of elements Shape describes, or -1 when a dim is negative.
func (t Tensor) elements() int {
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return -1
		}
		n *= int(d)
	}
	return n
}

// Session is a loaded model. Run may be called from several goroutines at once.
type Session struct {
	api     *api
	handle  uintptr
	name    string   // the model file, or "model bytes", for errors
	Inputs  []string // input names, in the model's order
	Outputs []string // output names, in the model's order
	// InputShapes are the declared input shapes, -1 where a dim is symbolic.
	InputShapes [][]int64
	// InputInts says which inputs are int64 (the others are float32).
	InputInts []bool

	inNames, outNames []uintptr // C strings from ONNX Runtime's allocator, as Run wants them
	closeOnce         sync.Once
}

// Open loads a model file with the given number of intra-op threads (0: ONNX Runtime's default,
// one per physical core).
func Open(path string, threads int) (*Session, error) {
	return newSession(path, nil, threads, "")
}

// OpenBytes loads a serialized model held in memory; name is used in errors.
func OpenBytes(name string, model []byte, threads int) (*Session, error) {
	if len(model) == 0 {
		return nil, fmt.Errorf("ort: %s: empty model", name)
	}
	return newSession(name, model, threads, "")
}

// newSession opens a model file (model nil) or bytes; a profile prefix turns ONNX Runtime's
// profiler on, writing to a file that starts with it (see TimeKernels).
func newSession(name string, model []byte, threads int, profile string) (*Session, error) {
	a, err := lib()
	if err != nil {
		return nil, err
	}
	if threads < 0 {
		return nil, fmt.Errorf("ort: %s: %d threads: want 0 or more", name, threads)
	}
	var opts uintptr
	if err := a.call(fnCreateSessionOptions, uintptr(unsafe.Pointer(&opts))); err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	defer a.release(fnReleaseSessionOptions, opts)
	if threads > 0 {
		if err := a.call(fnSetIntraOpNumThreads, opts, uintptr(threads)); err != nil {
			return nil, fmt.Errorf("ort: %d threads: %w", threads, err)
		}
		// One model runs one node at a time (sequential execution), so inter-op threads would idle.
		if err := a.call(fnSetInterOpNumThreads, opts, 1); err != nil {
			return nil, fmt.Errorf("ort: inter-op threads: %w", err)
		}
	}
	if profile != "" {
		p := cstring(profile)
		if err := a.call(fnEnableProfiling, opts, uintptr(unsafe.Pointer(&p[0]))); err != nil {
			return nil, fmt.Errorf("ort: profiling: %w", err)
		}
	}
	s := &Session{api: a, name: name}
	if model == nil {
		p := cstring(name)
		err = a.call(fnCreateSession, a.env, uintptr(unsafe.Pointer(&p[0])), opts, uintptr(unsafe.Pointer(&s.handle)))
	} else {
		err = a.call(fnCreateSessionFromArray, a.env, uintptr(unsafe.Pointer(&model[0])), uintptr(len(model)), opts,
			uintptr(unsafe.Pointer(&s.handle)))
	}
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	if err := s.describe(); err != nil {
		s.Close()
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	return s, nil
}

// describe reads the session's input and output names and the inputs' declared types and shapes.
func (s *Session) describe() error {
	a := s.api
	var nIn, nOut uintptr
	if err := a.call(fnSessionGetInputCount, s.handle, uintptr(unsafe.Pointer(&nIn))); err != nil {
		return fmt.Errorf("input count: %w", err)
	}
	if err := a.call(fnSessionGetOutputCount, s.handle, uintptr(unsafe.Pointer(&nOut))); err != nil {
		return fmt.Errorf("output count: %w", err)
	}
	for i := uintptr(0); i < nIn; i++ {
		var name *byte
		if err := a.call(fnSessionGetInputName, s.handle, i, a.alloc, uintptr(unsafe.Pointer(&name))); err != nil {
			return fmt.Errorf("input %d name: %w", i, err)
		}
		s.inNames = append(s.inNames, uintptr(unsafe.Pointer(name)))
		s.Inputs = append(s.Inputs, goString(name))
		shape, elem, err := s.inputType(i)
		if err != nil {
			return fmt.Errorf("input %s: %w", s.Inputs[i], err)
		}
		s.InputShapes = append(s.InputShapes, shape)
		s.InputInts = append(s.InputInts, elem == elemInt64)
	}
	for i := uintptr(0); i < nOut; i++ {
		var name *byte
		if err := a.call(fnSessionGetOutputName, s.handle, i, a.alloc, uintptr(unsafe.Pointer(&name))); err != nil {
			return fmt.Errorf("output %d name: %w", i, err)
		}
		s.outNames = append(s.outNames, uintptr(unsafe.Pointer(name)))
		s.Outputs = append(s.Outputs, goString(name))
	}
	return nil
}

// inputType reads input i's element type and declared shape.
func (s *Session) inputType(i uintptr) ([]int64, int32, error) {
	a := s.api
	var info, tensorInfo uintptr
	if err := a.call(fnSessionGetInputTypeInfo, s.handle, i, uintptr(unsafe.Pointer(&info))); err != nil {
		return nil, 0, err
	}
	defer a.release(fnReleaseTypeInfo, info)
	// The tensor info belongs to the type info: it is not released on its own.
	if err := a.call(fnCastTypeInfoToTensorInfo, info, uintptr(unsafe.Pointer(&tensorInfo))); err != nil {
		return nil, 0, err
	}
	if tensorInfo == 0 {
		return nil, 0, errors.New("not a tensor")
	}
	return a.typeAndShape(tensorInfo)
}

// typeAndShape reads an OrtTensorTypeAndShapeInfo.
func (a *api) typeAndShape(info uintptr) ([]int64, int32, error) {
	var elem int32
	var n uintptr
	if err := a.call(fnGetTensorElementType, info, uintptr(unsafe.Pointer(&elem))); err != nil {
		return nil, 0, err
	}
	if err := a.call(fnGetDimensionsCount, info, uintptr(unsafe.Pointer(&n))); err != nil {
		return nil, 0, err
	}
	if n > dimsMax {
		return nil, 0, fmt.Errorf("%d dims: more than %d", n, dimsMax)
	}
	var dims [dimsMax]int64
	if err := a.call(fnGetDimensions, info, uintptr(unsafe.Pointer(&dims[0])), n); err != nil {
		return nil, 0, err
	}
	return append([]int64{}, dims[:n]...), elem, nil
}

// Close frees the session, and returns the memory it held to the system (returnFreedMemory). It
// is safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		for _, p := range append(s.inNames, s.outNames...) {
			_ = s.api.call(fnAllocatorFree, s.api.alloc, p)
		}
		s.api.release(fnReleaseSession, s.handle)
		returnFreedMemory()
	})
	return nil
}

// inputValues wraps the inputs' Go memory in OrtValues without copying. The memory is pinned until
// free is called, since ONNX Runtime keeps the pointers after the call that creates the values.
func (s *Session) inputValues(inputs []Tensor) (vals []uintptr, free func(), err error) {
	if len(inputs) != len(s.Inputs) {
		return nil, nil, fmt.Errorf("ort: %s: %d inputs given, model has %d", s.name, len(inputs), len(s.Inputs))
	}
	a := s.api
	var pins runtime.Pinner
	free = func() {
		for _, v := range vals {
			a.release(fnReleaseValue, v)
		}
		pins.Unpin()
	}
	vals = make([]uintptr, 0, len(inputs))
	for i, in := range inputs {
		n := in.elements()
		var data unsafe.Pointer
		var bytes, elem uintptr
		switch {
		case in.Ints != nil && in.Data != nil:
			err = fmt.Errorf("ort: %s: input %s sets both Data and Ints", s.name, s.Inputs[i])
		case in.Ints != nil && len(in.Ints) == n:
			elem, bytes = elemInt64, uintptr(n)*8
			if n > 0 {
				data = unsafe.Pointer(&in.Ints[0])
			}
		case in.Ints == nil && len(in.Data) == n:
			elem, bytes = elemFloat, uintptr(n)*4
			if n > 0 {
				data = unsafe.Pointer(&in.Data[0])
			}
		default:
			err = fmt.Errorf("ort: %s: input %s: shape %v holds %d elements, data has %d", s.name, s.Inputs[i], in.Shape,
				n, max(len(in.Data), len(in.Ints)))
		}
		if err != nil {
			free()
			return nil, nil, err
		}
		if data != nil {
			pins.Pin(data)
		}
		var shape unsafe.Pointer
		if len(in.Shape) > 0 {
			shape = unsafe.Pointer(&in.Shape[0])
		}
		var v uintptr
		err = a.call(fnCreateTensorWithDataAsOrtValue, a.memInfo, uintptr(data), bytes, uintptr(shape),
			uintptr(len(in.Shape)), elem, uintptr(unsafe.Pointer(&v)))
		if err != nil {
			free()
			return nil, nil, fmt.Errorf("ort: %s: input %s: %w", s.name, s.Inputs[i], err)
		}
		vals = append(vals, v)
	}
	return vals, free, nil
}

// run runs the session on prepared input values and returns every output value, which the caller
// releases.
func (s *Session) run(vals []uintptr) ([]uintptr, error) {
	outs := make([]uintptr, len(s.outNames))
	var inNames, inVals, outNames, outVals unsafe.Pointer
	if len(vals) > 0 {
		inNames, inVals = unsafe.Pointer(&s.inNames[0]), unsafe.Pointer(&vals[0])
	}
	if len(outs) > 0 {
		outNames, outVals = unsafe.Pointer(&s.outNames[0]), unsafe.Pointer(&outs[0])
	}
	err := s.api.call(fnRun, s.handle, 0, uintptr(inNames), uintptr(inVals), uintptr(len(vals)),
		uintptr(outNames), uintptr(len(outs)), uintptr(outVals))
	if err != nil {
		s.releaseAll(outs)
		return nil, fmt.Errorf("ort: %s: run: %w", s.name, err)
	}
	return outs, nil
}

func (s *Session) releaseAll(vals []uintptr) {
	for _, v := range vals {
		s.api.release(fnReleaseValue, v)
	}
}

// Run feeds the inputs (in the model's input order) and returns every output, copied into Go
// memory.
func (s *Session) Run(inputs []Tensor) ([]Tensor, error) {
	vals, free, err := s.inputValues(inputs)
	if err != nil {
		return nil, err
	}
	defer free()
	outs, err := s.run(vals)
	if err != nil {
		return nil, err
	}
	defer s.releaseAll(outs)
	res := make([]Tensor, len(outs))
	for i, o := range outs {
		if res[i], err = s.api.readTensor(o); err != nil {
			return nil, fmt.Errorf("ort: %s: output %s: %w", s.name, s.Outputs[i], err)
		}
	}
	return res, nil
}

// readTensor copies an output OrtValue into Go memory.
func (a *api) readTensor(v uintptr) (Tensor, error) {
	var info uintptr
	if err := a.call(fnGetTensorTypeAndShape, v, uintptr(unsafe.Pointer(&info))); err != nil {
		return Tensor{}, err
	}
	shape, elem, err := a.typeAndShape(info)
	a.release(fnReleaseTensorTypeAndShapeInfo, info)
	if err != nil {
		return Tensor{}, err
	}
	t := Tensor{Shape: shape}
	n := t.elements()
	var data unsafe.Pointer
	if err := a.call(fnGetTensorMutableData, v, uintptr(unsafe.Pointer(&data))); err != nil {
		return Tensor{}, err
	}
	switch {
	case elem == elemFloat:
		t.Data = make([]float32, n)
		if n > 0 {
			copy(t.Data, unsafe.Slice((*float32)(data), n))
		}
	case elem == elemInt64:
		t.Ints = make([]int64, n)
		if n > 0 {
			copy(t.Ints, unsafe.Slice((*int64)(data), n))
		}
	default:
		return Tensor{}, fmt.Errorf("element type %d: only float32 and int64 outputs are read", elem)
	}
	return t, nil
}

// Run loads a model file, runs it once on ONNX Runtime's default threads and closes it.
func Run(path string, inputs []Tensor) ([]Tensor, error) {
	s, err := Open(path, 0)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Run(inputs)
}

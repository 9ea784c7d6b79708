// Package ort runs models in ONNX Runtime, the runtime chanopt's users deploy on, so tests and
// benchmarks can compare chanopt against it.
//
// It owns the cgo binding (github.com/yalue/onnxruntime_go) and only builds it with the `ort` build
// tag, so the plain build of chanopt stays pure Go. The shared library comes from `make ort` and is
// found through $CHANOPT_ORT_LIB. It must not be imported by non-test code of the pipeline stages.
package ort

import "errors"

// Tensor is a float32 tensor passed to or returned by ONNX Runtime.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// ErrUnavailable says ONNX Runtime cannot be used in this build or on this machine.
var ErrUnavailable = errors.New("ONNX Runtime is not available")

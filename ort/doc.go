// Package ort runs models in ONNX Runtime's CPU execution provider, the runtime chanopt's users
// deploy on, so chanopt can measure latency where it matters and tests can compare against it.
//
// It owns a thin binding to ONNX Runtime's C API, loaded at run time from the shared library with
// purego (no cgo): the library exports one function, OrtGetApiBase, that returns a table of
// function pointers, and the binding calls the dozen entries it needs by their index in that table
// (the table is append-only across releases, so the indices are the ABI). A build without the
// library still works: Available says why ONNX Runtime cannot be used, and callers fall back to
// chanopt's engine.
//
// The library is found, in order, at the path given to Load (the CLI's --ort-lib), at
// $CHANOPT_ORT_LIB, then under the usual names and folders (the dynamic linker's libonnxruntime.so.1
// and libonnxruntime.so, /usr/lib, /usr/local/lib, and $HOME/.cache/chanopt/ort-* where `make ort`
// installs it). An explicit path that fails is reported, never silently replaced by another library.
//
// The package also times runs (median and interquartile spread after warm-up), the measurement
// latency budgets and `chanopt bench` rely on.
//
// It must not know about chanopt's IR or pipeline: it takes model files or bytes and float32/int64
// tensors, and returns tensors and timings.
package ort

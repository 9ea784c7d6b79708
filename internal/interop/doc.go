// Package interop runs ONNX models through independent Go implementations — onnx-go's decoder with
// its gorgonia backend — so tests can check that what chanopt writes is read and computed the same
// way by software that shares no code with it.
//
// It is test plumbing for other packages' tests and for `make bench`; the pipeline stages must not
// import it.
package interop

// Package pb holds the Go types generated from onnx.proto, chanopt's own proto2 schema of the
// ONNX IR (protobuf package chanopt.onnxir, field numbers and packing identical to ONNX's).
//
// It owns the generated wire types only. It must not hold logic: reading, writing and external
// data live in package onnx (file.go), and everything else works on the IR built from these types.
package pb

//go:build !linux

package onnx

// mappedBytes: nothing is mapped here (see mmap_other.go).
func mappedBytes(b []byte) bool { return false }

//go:build !linux

package onnx

import "os"

// startWriteback does nothing where sync_file_range does not exist; see fileio_linux.go.
func startWriteback(f *os.File, off, n int64) {}

// holdReplaced does nothing here; see fileio_linux.go.
func holdReplaced(path string) (release func()) { return func() {} }

// preallocate does nothing here; see fileio_linux.go.
func preallocate(f *os.File, n int64) {}

// memoryAvailable is unknown here (0); see fileio_linux.go.
func memoryAvailable() int64 { return 0 }

//go:build !linux

package onnx

import (
	"errors"
	"os"
)

// mapMin: see mmap_linux.go. Elsewhere readModel always reads the data into memory.
var mapMin int64 = 1 << 62

// fileMap is never made here; see mmap_linux.go.
type fileMap struct{}

func mapFile(f *os.File, size int64) (*fileMap, error) { return nil, errors.ErrUnsupported }

func (m *fileMap) bytes(off, n int64) []byte { return nil }

func (m *fileMap) unused() {}

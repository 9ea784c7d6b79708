//go:build !(linux || darwin)

package ort

import (
	"fmt"
	"runtime"
)

// entryPoint fails: the binding loads libraries on Linux and macOS only.
func entryPoint(path string) (uintptr, error) {
	return 0, fmt.Errorf("load %s: no ONNX Runtime binding for %s", path, runtime.GOOS)
}

//go:build linux || darwin

package ort

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// entryPoint loads the shared library and finds OrtGetApiBase in it.
func entryPoint(path string) (uintptr, error) {
	handle, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return 0, fmt.Errorf("load %s: %s", path, oneLine(err.Error()))
	}
	base, err := purego.Dlsym(handle, "OrtGetApiBase")
	if err != nil {
		return 0, fmt.Errorf("%s is not ONNX Runtime: it has no OrtGetApiBase", path)
	}
	return base, nil
}

package dataset

import (
	"fmt"
	"io"
	"math"
	"os"

	"github.com/chanopt/chanopt/dataset/npy"
)

// loadLabels reads IDX uint8 labels or a .npy integer vector (either possibly gzipped).
func loadLabels(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr("labels", path, err)
	}
	defer f.Close()
	r, k, err := sniff(f)
	if err != nil {
		return nil, fmt.Errorf("labels: %s: %w", path, err)
	}
	var labels []int
	switch k {
	case kindIDX:
		labels, err = loadIDXLabels(r)
	case kindNPY:
		labels, err = npyLabels(r)
	default:
		err = fmt.Errorf("unrecognised format (want IDX labels or an .npy integer vector, either possibly gzipped)")
	}
	if err != nil {
		return nil, fmt.Errorf("labels: %s: %w", path, err)
	}
	return labels, nil
}

// npyLabels reads a vector (N or N×1) of non-negative integers.
func npyLabels(r io.Reader) ([]int, error) {
	a, err := npy.Read(r)
	if err != nil {
		return nil, err
	}
	if a.Int64 == nil {
		return nil, fmt.Errorf(".npy holds floats, want an integer vector")
	}
	if !(len(a.Shape) == 1 || len(a.Shape) == 2 && a.Shape[1] == 1) {
		return nil, fmt.Errorf(".npy shape %s is not a label vector (want N or N×1)", shapeString(a.Shape))
	}
	labels := make([]int, len(a.Int64))
	for i, v := range a.Int64 {
		if v < 0 || v > math.MaxInt32 {
			return nil, fmt.Errorf("label %d at index %d is out of range", v, i)
		}
		labels[i] = int(v)
	}
	return labels, nil
}

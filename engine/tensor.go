package engine

import (
	"fmt"
	"strings"
)

// Tensor is a dense row-major tensor. Floating-point tensors hold their values in Data; integer
// and bool tensors (shape arithmetic, indices, masks) hold them in Ints as int64 and have nil Data.
type Tensor struct {
	Shape []int
	Data  []float32
	Ints  []int64
}

// NewTensor makes a float tensor of the given shape over data (not copied). It panics when the
// sizes disagree, like a slice index would; use it with shapes you built.
func NewTensor(shape []int, data []float32) *Tensor {
	if numel(shape) != len(data) {
		panic(fmt.Sprintf("engine.NewTensor: shape %v needs %d values, got %d", shape, numel(shape), len(data)))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Zeros makes a float tensor of zeros.
func Zeros(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, numel(shape))}
}

// NewInts makes an int64 tensor of the given shape over data (not copied).
func NewInts(shape []int, data []int64) *Tensor {
	if numel(shape) != len(data) {
		panic(fmt.Sprintf("engine.NewInts: shape %v needs %d values, got %d", shape, numel(shape), len(data)))
	}
	if data == nil {
		data = []int64{}
	}
	return &Tensor{Shape: append([]int(nil), shape...), Ints: data}
}

// IsInt reports whether the tensor holds int64 values.
func (t *Tensor) IsInt() bool { return t.Ints != nil }

// Len is the number of elements.
func (t *Tensor) Len() int { return numel(t.Shape) }

// Clone deep-copies the tensor (without the engine's spare capacity).
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{Shape: append([]int{}, t.Shape...)}
	n := t.Len()
	if t.Ints != nil {
		c.Ints = append([]int64{}, t.Ints[:n]...)
	} else {
		c.Data = append([]float32{}, t.Data[:n]...)
	}
	return c
}

// Argmax returns, for each row of the last dimension, the index of its largest value.
func (t *Tensor) Argmax() []int {
	if len(t.Shape) == 0 || t.Shape[len(t.Shape)-1] == 0 || t.Data == nil {
		return nil
	}
	w := t.Shape[len(t.Shape)-1]
	rows := t.Len() / w
	out := make([]int, rows)
	for r := range out {
		row := t.Data[r*w : r*w+w]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[r] = best
	}
	return out
}

func (t *Tensor) String() string {
	var b strings.Builder
	kind := "float32"
	if t.IsInt() {
		kind = "int64"
	}
	fmt.Fprintf(&b, "%s%v", kind, t.Shape)
	return b.String()
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// newFloats allocates n floats followed by the slack the kernels may read past the end.
func newFloats(n int) []float32 { return make([]float32, n, n+slack)[:n:n] }

// strides returns the row-major element strides of a shape.
func strides(shape []int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis, rank int) (int, error) {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return axis, nil
}

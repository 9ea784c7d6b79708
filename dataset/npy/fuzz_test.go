package npy

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read: nothing may panic, errors are one line, a shape whose
// elements exceed MaxElements is refused before anything is allocated for it, and a success holds
// exactly the elements its shape says.
func FuzzRead(f *testing.F) {
	var good bytes.Buffer
	if err := Write(&good, &Array{Shape: []int{2, 3}, Float32: []float32{1, 2, 3, 4, 5, 6}}); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add([]byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<i8', 'fortran_order': True, 'shape': (99999999999, 99999999999), }"))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'descr': '|u1'}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of several lines: %q", err)
			}
			return
		}
		n := a.Len()
		if (a.Float32 == nil) == (a.Int64 == nil) || len(a.Float32)+len(a.Int64) != n || n > MaxElements {
			t.Fatalf("inconsistent array: shape %v, %d floats, %d ints", a.Shape, len(a.Float32), len(a.Int64))
		}
	})
}

package npy

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, a := range []*Array{
		{Shape: []int{2, 3}, Float32: []float32{1, 2, 3, 4.5, -5, 6}},
		{Shape: []int{4}, Int64: []int64{1, -2, 3, 1 << 40}},
		{Shape: []int{}, Float32: []float32{7}},
		{Shape: []int{0, 3}, Float32: []float32{}},
	} {
		var b bytes.Buffer
		if err := Write(&b, a); err != nil {
			t.Fatal(err)
		}
		if b.Len()%64 != 0 && a.Len() == 0 {
			t.Errorf("header not aligned: %d bytes", b.Len())
		}
		got, err := Read(&b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("got %+v, want %+v", got, a)
		}
	}
}

func TestReadErrors(t *testing.T) {
	for _, in := range []string{"", "\x93NUMPY\x01\x00", "\x93NUMPY\x01\x00\x05\x00{'de", "PK\x03\x04",
		"\x93NUMPY\x01\x00\x30\x00{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
		"\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,), }"} {
		if _, err := Read(strings.NewReader(in)); err == nil {
			t.Errorf("Read(%q) succeeded", in)
		}
	}
}

// TestNumPy checks files written by NumPy (when Debian's python3-numpy is present).
func TestNumPy(t *testing.T) {
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skip("no /usr/bin/python3")
	}
	dir := t.TempDir()
	script := `import numpy as np, sys
d = sys.argv[1]
np.save(d + '/f8.npy', np.arange(6, dtype=np.float64).reshape(2, 3))
np.save(d + '/fortran.npy', np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save(d + '/u1.npy', np.array([[0, 255]], dtype=np.uint8))
np.save(d + '/be.npy', np.array([1.5, -2], dtype='>f4'))
np.save(d + '/b1.npy', np.array([True, False]))
a = np.load(d + '/ours.npy'); assert a.dtype == np.float32 and a.shape == (2, 2) and a[1, 0] == 3, a
`
	if err := WriteFile(filepath.Join(dir, "ours.npy"), &Array{Shape: []int{2, 2}, Float32: []float32{1, 2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Skipf("numpy unavailable or failed: %s", out)
	}
	cases := map[string]*Array{
		"f8.npy":      {Shape: []int{2, 3}, Float32: []float32{0, 1, 2, 3, 4, 5}},
		"fortran.npy": {Shape: []int{2, 3}, Float32: []float32{0, 1, 2, 3, 4, 5}},
		"u1.npy":      {Shape: []int{1, 2}, Int64: []int64{0, 255}},
		"be.npy":      {Shape: []int{2}, Float32: []float32{1.5, -2}},
		"b1.npy":      {Shape: []int{2}, Int64: []int64{1, 0}},
	}
	for name, want := range cases {
		got, err := ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
}

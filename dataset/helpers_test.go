package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes encodes an IDX file: magic, dims, payload.
func idxBytes(magic uint32, dims []uint32, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(payload)
	return b.Bytes()
}

// gz compresses b.
func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// ramp is n bytes with byte i = (i*7+off) mod 256.
func ramp(n, off int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + off)
	}
	return b
}

// npyBytes encodes a little-endian C-order .npy file of the given dtype.
func npyBytes(descr string, shape []int, payload []byte) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	s := strings.Join(dims, ", ")
	if len(shape) == 1 {
		s += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, s)
	total := (10 + len(h) + 1 + 63) / 64 * 64
	h += strings.Repeat(" ", total-10-len(h)-1) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	b.Write(payload)
	return b.Bytes()
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func i64Bytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// near reports whether a and b agree within tol.
func near(a, b, tol float32) bool { return math.Abs(float64(a-b)) <= float64(tol) }

// checkOneLineErr fails unless err is a one-line error starting with prefix, naming file and
// containing want.
func checkOneLineErr(t *testing.T, err error, prefix, file, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "\n"):
		t.Errorf("error has more than one line: %q", msg)
	case !strings.HasPrefix(msg, prefix):
		t.Errorf("error %q does not start with %q", msg, prefix)
	case file != "" && !strings.Contains(msg, file):
		t.Errorf("error %q does not name %s", msg, file)
	case !strings.Contains(msg, want):
		t.Errorf("error %q does not say %q", msg, want)
	}
}

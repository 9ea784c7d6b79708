// Package npy reads and writes NumPy .npy files (format versions 1, 2 and 3) holding float32 or
// int64 arrays, as the engine's tests, the CLI's run command and calibration data use them.
//
// Reading also accepts float64 (narrowed to float32) and the integer and bool dtypes (widened to
// int64), little- or big-endian, in C or Fortran order. Writing produces version 1 little-endian
// C-order files, or version 2 when the header needs it.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Array is an n-dimensional array in C (row-major) order: Float32 holds floating-point data,
// Int64 integer and bool data; exactly one is non-nil.
type Array struct {
	Shape   []int
	Float32 []float32
	Int64   []int64
}

// Len is the number of elements the shape describes.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

var magic = []byte("\x93NUMPY")

// MaxElements bounds the elements a header may declare (16 Gi), so that no reader allocates
// for a shape a few bytes made up.
const MaxElements = 1 << 34

// ReadFile reads an .npy file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Header is what an .npy header says: the dtype (NumPy's descr, such as "<f4"), whether the data
// is in Fortran order, and the shape.
type Header struct {
	Descr   string
	Fortran bool
	Shape   []int
}

// Elements is the number of elements the shape describes (ReadHeader has bounded it).
func (h Header) Elements() int {
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// ReadHeader reads the magic, version and header dictionary of an .npy stream and leaves r at
// the first data byte. It is the one .npy header parser of the repository (dataset reads its
// images' headers with it). Dims must be non-negative and hold at most MaxElements elements in
// all, so that no caller allocates for a shape a few bytes of header made up. Errors wrap the
// reader's (a gzip failure stays visible to errors.As); a stream that ends early is "truncated".
func ReadHeader(r io.Reader) (Header, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, fmt.Errorf("truncated: an .npy preamble needs 8 bytes: %w", err)
	}
	if !bytes.Equal(pre[:6], magic) {
		return Header{}, errors.New("not an .npy file (bad magic)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("truncated: the .npy header length is cut off: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("truncated: the .npy header length is cut off: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return Header{}, fmt.Errorf(".npy version %d.%d is not supported", pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return Header{}, fmt.Errorf(".npy header of %d bytes is too long", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return Header{}, fmt.Errorf("truncated: the .npy header needs %d bytes: %w", hlen, err)
	}
	h, err := parseHeader(string(hb))
	if err != nil {
		return Header{}, err
	}
	n := 1
	for _, d := range h.Shape {
		if d > 0 && n > MaxElements/d {
			return Header{}, fmt.Errorf(".npy shape %v holds more than %d elements", h.Shape, MaxElements)
		}
		n *= d
	}
	return h, nil
}

// Read decodes an .npy stream.
func Read(r io.Reader) (*Array, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	a, err := readData(r, h.Descr, h.Elements())
	if err != nil {
		return nil, err
	}
	a.Shape = h.Shape
	if h.Fortran && len(h.Shape) > 1 {
		a.toC()
	}
	return a, nil
}

// parseHeader reads the Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseHeader(text string) (Header, error) {
	text = strings.TrimSpace(text)
	bad := func(what string) error { return fmt.Errorf("bad .npy header %.80q: %s", text, what) }
	if !strings.HasPrefix(text, "{") || !strings.HasSuffix(text, "}") {
		return Header{}, bad("not a dict")
	}
	field := func(key string) (string, bool) {
		for _, q := range []string{"'", "\""} {
			i := strings.Index(text, q+key+q)
			if i < 0 {
				continue
			}
			rest := strings.TrimSpace(text[i+len(key)+2:])
			if !strings.HasPrefix(rest, ":") {
				return "", false
			}
			return strings.TrimSpace(rest[1:]), true
		}
		return "", false
	}
	var h Header
	v, ok := field("descr")
	if !ok || len(v) < 2 || (v[0] != '\'' && v[0] != '"') {
		return Header{}, bad("no descr")
	}
	end := strings.IndexByte(v[1:], v[0])
	if end < 0 {
		return Header{}, bad("no descr")
	}
	h.Descr = v[1 : 1+end]
	if v, ok := field("fortran_order"); ok {
		h.Fortran = strings.HasPrefix(v, "True")
	}
	v, ok = field("shape")
	if !ok || !strings.HasPrefix(v, "(") {
		return Header{}, bad("no shape")
	}
	end = strings.IndexByte(v, ')')
	if end < 0 {
		return Header{}, bad("no shape")
	}
	h.Shape = []int{}
	for _, part := range strings.Split(v[1:end], ",") {
		part = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(part), "L"))
		if part == "" {
			continue
		}
		d, err := strconv.Atoi(part)
		if err != nil || d < 0 {
			return Header{}, bad(fmt.Sprintf("dim %q", part))
		}
		h.Shape = append(h.Shape, d)
	}
	return h, nil
}

func readData(r io.Reader, descr string, n int) (*Array, error) {
	if len(descr) < 2 {
		return nil, fmt.Errorf("unsupported dtype %q", descr)
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch descr[0] {
	case '>':
		order = binary.BigEndian
	case '<', '|', '=':
	default:
		return nil, fmt.Errorf("unsupported dtype %q", descr)
	}
	kind := descr[1:]
	size := map[string]int{"f4": 4, "f8": 8, "f2": 2, "i8": 8, "i4": 4, "i2": 2, "i1": 1, "u8": 8, "u4": 4, "u2": 2, "u1": 1, "b1": 1}[kind]
	if size == 0 {
		return nil, fmt.Errorf("unsupported dtype %q (want float32/float64 or an integer type)", descr)
	}
	buf := make([]byte, 0, min(n*size, 1<<26))
	br := io.LimitReader(r, int64(n)*int64(size))
	var err error
	if buf, err = readAll(br, buf); err != nil {
		return nil, err
	}
	if len(buf) != n*size {
		return nil, fmt.Errorf("data has %d bytes, want %d", len(buf), n*size)
	}
	a := &Array{}
	switch kind {
	case "f4", "f8", "f2":
		a.Float32 = make([]float32, n)
		for i := range a.Float32 {
			switch kind {
			case "f4":
				a.Float32[i] = math.Float32frombits(order.Uint32(buf[4*i:]))
			case "f8":
				a.Float32[i] = float32(math.Float64frombits(order.Uint64(buf[8*i:])))
			default:
				a.Float32[i] = halfToFloat(order.Uint16(buf[2*i:]))
			}
		}
	default:
		a.Int64 = make([]int64, n)
		for i := range a.Int64 {
			switch kind {
			case "i8", "u8":
				a.Int64[i] = int64(order.Uint64(buf[8*i:]))
			case "i4":
				a.Int64[i] = int64(int32(order.Uint32(buf[4*i:])))
			case "u4":
				a.Int64[i] = int64(order.Uint32(buf[4*i:]))
			case "i2":
				a.Int64[i] = int64(int16(order.Uint16(buf[2*i:])))
			case "u2":
				a.Int64[i] = int64(order.Uint16(buf[2*i:]))
			case "i1":
				a.Int64[i] = int64(int8(buf[i]))
			default:
				a.Int64[i] = int64(buf[i])
			}
		}
	}
	return a, nil
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int(h>>10) & 0x1f
	frac := uint32(h & 0x3ff)
	switch {
	case exp == 0:
		v := float32(math.Ldexp(float64(frac), -24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | frac<<13)
}

// toC reorders Fortran-order data into C order.
func (a *Array) toC() {
	r := len(a.Shape)
	n := a.Len()
	// Fortran strides
	fs := make([]int, r)
	s := 1
	for i := 0; i < r; i++ {
		fs[i] = s
		s *= a.Shape[i]
	}
	idx := make([]int, r)
	var f32 []float32
	var i64 []int64
	if a.Float32 != nil {
		f32 = make([]float32, n)
	} else {
		i64 = make([]int64, n)
	}
	for c := 0; c < n; c++ {
		src := 0
		for k := 0; k < r; k++ {
			src += idx[k] * fs[k]
		}
		if f32 != nil {
			f32[c] = a.Float32[src]
		} else {
			i64[c] = a.Int64[src]
		}
		for k := r - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < a.Shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	if f32 != nil {
		a.Float32 = f32
	} else {
		a.Int64 = i64
	}
}

// WriteFile writes a float32 or int64 array as an .npy file.
func WriteFile(path string, a *Array) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := Write(w, a); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// Write encodes an array.
func Write(w io.Writer, a *Array) error {
	descr := "<f4"
	n := a.Len()
	switch {
	case a.Float32 != nil && a.Int64 == nil:
		if len(a.Float32) != n {
			return fmt.Errorf("shape %v needs %d values, have %d", a.Shape, n, len(a.Float32))
		}
	case a.Int64 != nil && a.Float32 == nil:
		descr = "<i8"
		if len(a.Int64) != n {
			return fmt.Errorf("shape %v needs %d values, have %d", a.Shape, n, len(a.Int64))
		}
	default:
		return errors.New("array must hold exactly one of Float32 and Int64")
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape)
	// pad with spaces so data starts at a multiple of 64 bytes, ending with a newline
	version, pre := byte(1), 10
	if len(header)+1+pre > 65535 {
		version, pre = 2, 12
	}
	total := (pre + len(header) + 1 + 63) / 64 * 64
	header += strings.Repeat(" ", total-pre-len(header)-1) + "\n"
	var b bytes.Buffer
	b.Write(magic)
	b.WriteByte(version)
	b.WriteByte(0)
	if version == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(header)))
	}
	b.WriteString(header)
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	flush := func() error {
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	for i := 0; i < n; i++ {
		if a.Float32 != nil {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(a.Float32[i]))
		} else {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(a.Int64[i]))
		}
		if len(buf) >= 1<<16-8 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

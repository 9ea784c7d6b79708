package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// kind is a data format recognised from the first bytes of a stream.
type kind int

const (
	kindUnknown kind = iota
	kindIDX
	kindNPY
)

var npyMagic = []byte("\x93NUMPY")

// gzipError marks a failure of the gzip layer, so it is not mistaken for a truncated payload.
type gzipError struct{ err error }

func (e *gzipError) Error() string { return "bad gzip: " + e.err.Error() }
func (e *gzipError) Unwrap() error { return e.err }

// gzipReader tags every error of the decompressor except the clean end.
type gzipReader struct{ r io.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = &gzipError{err}
	}
	return n, err
}

// sniff unwraps gzip when present and recognises the payload.
func sniff(r io.Reader) (io.Reader, kind, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, kindUnknown, &gzipError{err}
		}
		br = bufio.NewReaderSize(gzipReader{zr}, 1<<16)
	}
	head, err := br.Peek(len(npyMagic))
	var ge *gzipError
	if errors.As(err, &ge) {
		return nil, kindUnknown, ge
	}
	switch {
	case bytes.HasPrefix(head, npyMagic):
		return br, kindNPY, nil
	case len(head) >= 3 && head[0] == 0 && head[1] == 0 && head[2] != 0:
		return br, kindIDX, nil
	}
	return br, kindUnknown, nil
}

// loadFile reads IDX or .npy images from a file.
func loadFile(path string, opt Options) (*Set, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, pathErr("data", path, err)
	}
	defer f.Close()
	return loadStream(path, f, opt)
}

// loadStream reads IDX or .npy images from r; name is used in errors. It returns the images kept
// and the number of images in the data.
func loadStream(name string, r io.Reader, opt Options) (*Set, int, error) {
	r, k, err := sniff(r)
	if err != nil {
		return nil, 0, fmt.Errorf("data: %s: %w", name, err)
	}
	switch k {
	case kindIDX:
		return loadIDX(name, r, opt)
	case kindNPY:
		return loadNPY(name, r, opt)
	}
	return nil, 0, fmt.Errorf("data: %s: unrecognised format (want IDX, .npy, either possibly gzipped, or a folder of PNG/JPEG)", name)
}

// records describes the payload of a file of fixed-size records.
type records struct {
	keep     int // records to keep
	elems    int // values per record
	elemSize int // bytes per value
	// conv converts a record's bytes to floats; nil keeps the bytes as they are (one byte per
	// value: the Set decodes them batch by batch, at a quarter of the memory of floats).
	conv func(dst []float32, src []byte)
}

// read keeps the first keep records of r (as floats, or as bytes when conv is nil), then counts the
// rest of the stream. It returns the values and the payload bytes seen (all of them, when err is
// nil or a truncation).
func (rc records) read(r io.Reader) (floats []float32, raw []byte, seen int64, err error) {
	recBytes := rc.elems * rc.elemSize
	chunk := make([]byte, max(min(recBytes, 1<<16)/rc.elemSize*rc.elemSize, rc.elemSize))
	// Grow with the data actually read, never from the header's claims alone.
	hint := 1 << 22
	if rc.keep <= hint/rc.elems {
		hint = rc.keep * rc.elems
	}
	if rc.conv != nil {
		floats = make([]float32, 0, hint)
	} else {
		raw = make([]byte, 0, hint)
	}
	for i := 0; i < rc.keep; i++ {
		for left := recBytes; left > 0; {
			m := min(left, len(chunk))
			k, err := io.ReadFull(r, chunk[:m])
			seen += int64(k)
			if err != nil {
				return nil, nil, seen, err
			}
			if rc.conv == nil {
				raw = append(raw, chunk[:m]...)
			} else {
				n := len(floats)
				floats = slices.Grow(floats, m/rc.elemSize)[:n+m/rc.elemSize]
				rc.conv(floats[n:], chunk[:m])
			}
			left -= m
		}
	}
	rest, err := io.Copy(io.Discard, r)
	return floats, raw, seen + rest, err
}

// readErr turns a read failure into a one-line error: gzip failures as such, anything else
// (a short stream) as a truncation described by what.
func readErr(name string, err error, what string, seen int64) error {
	var ge *gzipError
	switch {
	case errors.As(err, &ge):
		return fmt.Errorf("data: %s: %w", name, ge)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("data: %s: truncated: header says %s, file has %d bytes of data", name, what, seen)
	}
	return fmt.Errorf("data: %s: %w", name, err)
}

// u8ToUnit scales bytes to [0,1].
func u8ToUnit(dst []float32, src []byte) {
	for i, b := range src {
		dst[i] = float32(b) / 255
	}
}

// lumaToUnit writes the ITU-R 601 luma of three planes (R, G, B) of src scaled to [0,1], as PIL's
// convert("L") does.
func lumaToUnit(dst []float32, src []byte) {
	plane := len(dst)
	r, g, b := src[:plane], src[plane:2*plane], src[2*plane:3*plane]
	for i := range dst {
		dst[i] = float32(299*int(r[i])+587*int(g[i])+114*int(b[i])) / (1000 * 255)
	}
}

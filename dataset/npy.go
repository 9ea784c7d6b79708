package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/chanopt/chanopt/dataset/npy"
)

// Images in .npy are decoded here rather than with npy.Read, which widens uint8 to int64 (losing
// the dtype that decides the 1/255 scaling) and reads the whole array even when only the first
// Samples images are wanted; the header is parsed by npy.ReadHeader, the one parser. Labels,
// small and integer, use npy.Read.

// readNPYHeader reads an .npy header with npy.ReadHeader; a gzip failure is reported as such.
func readNPYHeader(r io.Reader) (npy.Header, error) {
	h, err := npy.ReadHeader(r)
	var ge *gzipError
	if err != nil && errors.As(err, &ge) {
		return h, ge
	}
	return h, err
}

// shapeString prints a shape the way NumPy does.
func shapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.Itoa(d)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// loadNPY reads float32/float64 (as stored) or uint8 (scaled by 1/255) images shaped N×C×H×W, or
// N×H×W for one channel.
func loadNPY(name string, r io.Reader, opt Options) (*Set, int, error) {
	hd, err := readNPYHeader(r)
	if err != nil {
		return nil, 0, fmt.Errorf("data: %s: %w", name, err)
	}
	var (
		size  int
		dtype string
		conv  func(dst []float32, src []byte)
	)
	switch hd.Descr {
	case "<f4", "=f4":
		size, dtype = 4, "float32"
		conv = func(dst []float32, src []byte) {
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
			}
		}
	case "<f8", "=f8":
		size, dtype = 8, "float64"
		conv = func(dst []float32, src []byte) {
			for i := range dst {
				dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
			}
		}
	case "|u1", "<u1", "=u1":
		size, dtype = 1, "uint8" // kept as bytes
	default:
		return nil, 0, fmt.Errorf("data: %s: .npy dtype %q is not supported (want little-endian float32, float64 or uint8)", name, hd.Descr)
	}
	if hd.Fortran && len(hd.Shape) > 1 {
		return nil, 0, fmt.Errorf("data: %s: Fortran-order .npy is not supported (save np.ascontiguousarray(x))", name)
	}
	shapeErr := func() error {
		return fmt.Errorf("data: %s: .npy shape %s does not fit the model's input %d×%d×%d (want N×C×H×W, or N×H×W for 1 channel)",
			name, shapeString(hd.Shape), opt.Channels, opt.Height, opt.Width)
	}
	var n, c, h, w int
	switch len(hd.Shape) {
	case 3:
		n, c, h, w = hd.Shape[0], 1, hd.Shape[1], hd.Shape[2]
	case 4:
		n, c, h, w = hd.Shape[0], hd.Shape[1], hd.Shape[2], hd.Shape[3]
	default:
		return nil, 0, shapeErr()
	}
	if opt.Height == 0 && opt.Width == 0 && h > 0 && w > 0 && h <= maxDim && w <= maxDim {
		opt.Height, opt.Width = h, w
	}
	if h != opt.Height || w != opt.Width {
		return nil, 0, shapeErr()
	}
	var notes []string
	copies := 1
	switch {
	case c == opt.Channels:
	case c == 1 && opt.Channels == 3:
		copies = 3
		notes = append(notes, fmt.Sprintf("%s: 1-channel images replicated to 3 channels for a 3-channel model", name))
	default:
		return nil, 0, shapeErr()
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("data: %s: holds no images", name)
	}
	elems := c * h * w
	hi, lo := bits.Mul64(uint64(n), uint64(elems))
	hi2, need := bits.Mul64(lo, uint64(size))
	what := fmt.Sprintf("shape %s %s", shapeString(hd.Shape), dtype)
	keep := n
	if opt.Samples > 0 {
		keep = min(keep, opt.Samples)
	}
	if err := checkFits(name, keep, elems*copies); err != nil {
		return nil, 0, err
	}
	rc := records{keep: keep, elems: elems, elemSize: size, conv: conv}
	images, raw, seen, err := rc.read(r)
	if err != nil {
		return nil, 0, readErr(name, err, what, seen)
	}
	switch {
	case hi != 0 || hi2 != 0 || uint64(seen) < need:
		return nil, 0, fmt.Errorf("data: %s: truncated: header says %s, file has %d bytes of data", name, what, seen)
	case uint64(seen) > need:
		return nil, 0, fmt.Errorf("data: %s: header says %s (%d bytes), file has %d bytes of data", name, what, need, seen)
	}
	for i, v := range images {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, 0, fmt.Errorf("data: %s: image %d holds %v", name, i/elems, v)
		}
	}
	st := &store{enc: encFloats, floats: images, srcC: c}
	if conv == nil {
		st = &store{enc: encBytes, bytes: raw, srcC: c}
	}
	s := newSet(keep, opt.Channels, opt.Height, opt.Width, st)
	s.Source, s.Notes = name, notes
	return s, n, nil
}

package dataset

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Images in .npy are read here rather than with dataset/npy, which widens uint8 to int64 (losing
// the dtype that decides the 1/255 scaling) and reads the whole array even when only the first
// Samples images are wanted. Labels, small and integer, use dataset/npy.

// npyHeader is what the .npy header dictionary says.
type npyHeader struct {
	descr   string
	fortran bool
	shape   []int
}

// readNPYHeader reads the magic, version, and header dictionary.
func readNPYHeader(r io.Reader) (npyHeader, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return npyHeader{}, headerErr(err, "an .npy preamble needs 8 bytes")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return npyHeader{}, headerErr(err, "the .npy header length is cut off")
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return npyHeader{}, headerErr(err, "the .npy header length is cut off")
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return npyHeader{}, fmt.Errorf(".npy version %d.%d is not supported", pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return npyHeader{}, fmt.Errorf(".npy header of %d bytes is too long", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return npyHeader{}, headerErr(err, fmt.Sprintf("the .npy header needs %d bytes", hlen))
	}
	return parseNPYHeader(string(hb))
}

// parseNPYHeader reads the Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseNPYHeader(h string) (npyHeader, error) {
	h = strings.TrimSpace(h)
	bad := fmt.Errorf("bad .npy header %.80q", h)
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return npyHeader{}, bad
	}
	value := func(key string) (string, bool) {
		for _, q := range []string{"'", `"`} {
			if i := strings.Index(h, q+key+q); i >= 0 {
				rest := strings.TrimSpace(h[i+len(key)+2:])
				if v, ok := strings.CutPrefix(rest, ":"); ok {
					return strings.TrimSpace(v), true
				}
			}
		}
		return "", false
	}
	var hd npyHeader
	v, ok := value("descr")
	if !ok || len(v) < 2 || (v[0] != '\'' && v[0] != '"') {
		return npyHeader{}, bad
	}
	end := strings.IndexByte(v[1:], v[0])
	if end < 0 {
		return npyHeader{}, bad
	}
	hd.descr = v[1 : 1+end]
	if v, ok := value("fortran_order"); ok {
		hd.fortran = strings.HasPrefix(v, "True")
	}
	v, ok = value("shape")
	if !ok || !strings.HasPrefix(v, "(") {
		return npyHeader{}, bad
	}
	end = strings.IndexByte(v, ')')
	if end < 0 {
		return npyHeader{}, bad
	}
	hd.shape = []int{}
	for _, part := range strings.Split(v[1:end], ",") {
		part = strings.TrimSuffix(strings.TrimSpace(part), "L")
		if part == "" {
			continue
		}
		d, err := strconv.Atoi(part)
		if err != nil || d < 0 || d > math.MaxUint32 {
			return npyHeader{}, bad
		}
		hd.shape = append(hd.shape, d)
	}
	return hd, nil
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
	switch hd.descr {
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
		size, dtype, conv = 1, "uint8", u8ToUnit
	default:
		return nil, 0, fmt.Errorf("data: %s: .npy dtype %q is not supported (want little-endian float32, float64 or uint8)", name, hd.descr)
	}
	if hd.fortran && len(hd.shape) > 1 {
		return nil, 0, fmt.Errorf("data: %s: Fortran-order .npy is not supported (save np.ascontiguousarray(x))", name)
	}
	shapeErr := func() error {
		return fmt.Errorf("data: %s: .npy shape %s does not fit the model's input %d×%d×%d (want N×C×H×W, or N×H×W for 1 channel)",
			name, shapeString(hd.shape), opt.Channels, opt.Height, opt.Width)
	}
	var n, c, h, w int
	switch len(hd.shape) {
	case 3:
		n, c, h, w = hd.shape[0], 1, hd.shape[1], hd.shape[2]
	case 4:
		n, c, h, w = hd.shape[0], hd.shape[1], hd.shape[2], hd.shape[3]
	default:
		return nil, 0, shapeErr()
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
	what := fmt.Sprintf("shape %s %s", shapeString(hd.shape), dtype)
	keep := n
	if opt.Samples > 0 {
		keep = min(keep, opt.Samples)
	}
	rc := records{keep: keep, elems: elems, elemSize: size, copies: copies, conv: conv}
	images, seen, err := rc.read(r)
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
			return nil, 0, fmt.Errorf("data: %s: image %d holds %v", name, i/(elems*copies), v)
		}
	}
	s := &Set{N: keep, C: opt.Channels, H: opt.Height, W: opt.Width, Images: images, Source: name, Notes: notes}
	return s, n, nil
}

package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// IDX magics: two zero bytes, the element type (0x08 = uint8) and the number of dimensions.
const (
	idxImages = 0x00000803
	idxLabels = 0x00000801
)

// idxHeader reads the magic and the dimensions of an IDX stream.
func idxHeader(r io.Reader) (magic uint32, dims []uint32, err error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, nil, headerErr(err, "an IDX header needs 4 bytes of magic")
	}
	magic = binary.BigEndian.Uint32(b[:])
	if b[2] != 0x08 {
		return magic, nil, fmt.Errorf("IDX element type 0x%02X is not supported (want uint8, 0x08; magic 0x%08X)", b[2], magic)
	}
	dims = make([]uint32, b[3])
	for i := range dims {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return magic, nil, headerErr(err, fmt.Sprintf("the IDX header has %d dimensions but ends after %d", len(dims), i))
		}
		dims[i] = binary.BigEndian.Uint32(b[:])
	}
	return magic, dims, nil
}

// headerErr keeps gzip failures and calls anything else a truncated header.
func headerErr(err error, what string) error {
	var ge *gzipError
	if errors.As(err, &ge) {
		return ge
	}
	return fmt.Errorf("truncated: %s", what)
}

// loadIDX reads uint8 IDX images (N×H×W) as N×1×H×W, or N×3×H×W for a 3-channel model.
func loadIDX(name string, r io.Reader, opt Options) (*Set, int, error) {
	magic, dims, err := idxHeader(r)
	if err != nil {
		return nil, 0, fmt.Errorf("data: %s: %w", name, err)
	}
	switch {
	case magic == idxLabels:
		return nil, 0, fmt.Errorf("data: %s: holds IDX labels (magic 0x%08X), not images (0x%08X)", name, magic, idxImages)
	case magic != idxImages:
		return nil, 0, fmt.Errorf("data: %s: IDX with %d dimensions (magic 0x%08X) is not supported (want images N×H×W, magic 0x%08X)", name, len(dims), magic, idxImages)
	}
	n, h, w := dims[0], dims[1], dims[2]
	if opt.Height == 0 && opt.Width == 0 {
		if h == 0 || w == 0 || h > maxDim || w > maxDim {
			return nil, 0, fmt.Errorf("data: %s: images are %d×%d, want 1 to %d on each side", name, h, w, maxDim)
		}
		opt.Height, opt.Width = int(h), int(w)
	}
	if int(h) != opt.Height || int(w) != opt.Width {
		return nil, 0, fmt.Errorf("data: %s: images are %d×%d, the model takes %d×%d", name, h, w, opt.Height, opt.Width)
	}
	var notes []string
	copies := 1
	switch opt.Channels {
	case 1:
	case 3:
		copies = 3
		notes = append(notes, fmt.Sprintf("%s: grey IDX images replicated to 3 channels for a 3-channel model", name))
	default:
		return nil, 0, fmt.Errorf("data: %s: IDX images have 1 channel, the model takes %d", name, opt.Channels)
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("data: %s: holds no images", name)
	}
	plane := int(h) * int(w)
	hi, need := bits.Mul64(uint64(n), uint64(plane))
	what := fmt.Sprintf("%d images of %d×%d", n, h, w)
	keep := int(n)
	if opt.Samples > 0 {
		keep = min(keep, opt.Samples)
	}
	if err := checkFits(name, keep, plane*copies); err != nil {
		return nil, 0, err
	}
	rc := records{keep: keep, elems: plane, elemSize: 1}
	_, raw, seen, err := rc.read(r)
	if err != nil {
		return nil, 0, readErr(name, err, what, seen)
	}
	switch {
	case hi != 0 || uint64(seen) < need:
		return nil, 0, fmt.Errorf("data: %s: truncated: header says %s, file has %d bytes of data", name, what, seen)
	case uint64(seen) > need:
		return nil, 0, fmt.Errorf("data: %s: header says %s (%d bytes), file has %d bytes of data", name, what, need, seen)
	}
	s := newSet(keep, opt.Channels, opt.Height, opt.Width, &store{enc: encBytes, bytes: raw, srcC: 1})
	s.Source, s.Notes = name, notes
	return s, int(n), nil
}

// loadIDXLabels reads uint8 IDX labels.
func loadIDXLabels(r io.Reader) ([]int, error) {
	magic, dims, err := idxHeader(r)
	if err != nil {
		return nil, err
	}
	switch {
	case magic == idxImages:
		return nil, fmt.Errorf("holds IDX images (magic 0x%08X), not labels (0x%08X)", magic, idxLabels)
	case magic != idxLabels:
		return nil, fmt.Errorf("IDX with %d dimensions (magic 0x%08X) is not a label vector (magic 0x%08X)", len(dims), magic, idxLabels)
	}
	n := int64(dims[0])
	// ReadAll grows with the bytes present, not with the header's count.
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < n {
		return nil, fmt.Errorf("truncated: header says %d labels, file has %d bytes of data", n, len(b))
	}
	if int64(len(b)) > n {
		rest, err := io.Copy(io.Discard, r)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("header says %d labels, file has %d bytes of data", n, int64(len(b))+rest)
	}
	labels := make([]int, n)
	for i, v := range b {
		labels[i] = int(v)
	}
	return labels, nil
}

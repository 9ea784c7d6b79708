package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// Options describe the model's input and what to do with the data.
type Options struct {
	// Channels, Height and Width are the model's input shape C×H×W (without the batch). Height
	// and Width both 0 take the data's own size (a model with symbolic spatial dims): an IDX or
	// .npy file's, or a folder's first image's (in the walk's sorted order), the others resized
	// to it.
	Channels, Height, Width int
	// Samples keeps at most that many images (0 = all); see the package comment for which.
	Samples int
	// Mean and Std, one value per channel, normalise after scaling; nil means 0 and 1.
	Mean, Std []float32
	// Seed picks the sampled files of a folder.
	Seed uint64
	// Progress, if set, hears how many images of a folder are decoded (decoding a few thousand
	// photos takes a while).
	Progress func(done, total int)
}

// maxDim bounds each of the model's input dimensions, maxFloats the values a Set may hold (64 GiB).
const (
	maxDim    = 1 << 16
	maxFloats = 1 << 34
)

// Set is a batch of images in NCHW order with optional labels. Images are read with Batch or
// Image, which decode them: a Set keeps bytes where the data are bytes (IDX, image folders, uint8
// .npy), a quarter of the memory of floats, and Head, Range and Split share them.
type Set struct {
	N, C, H, W int
	st         *store
	idx        []int // the store's image behind each of the Set's, in order
	// Labels holds one class index per image, or is nil when there are no labels.
	Labels []int
	// Classes names the label indices when they came from class folders.
	Classes []string
	// Source is the data path as given.
	Source string
	// Notes records conversions the caller may want to report (for example grey replicated to RGB).
	Notes []string
}

// Load reads the data at path (IDX, .npy, or a folder of PNG/JPEG) and, when labelsPath is not
// empty, its labels, then samples and normalises as opt says.
func Load(path, labelsPath string, opt Options) (*Set, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("data: no path given")
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, pathErr("data", path, err)
	}
	var (
		s     *Set
		total int   // images in the data before sampling
		kept  []int // indices of the kept images, nil = the first s.N
	)
	if info.IsDir() {
		s, total, kept, err = loadFolder(path, labelsPath == "", opt)
	} else {
		s, total, err = loadFile(path, opt)
	}
	if err != nil {
		return nil, err
	}
	if labelsPath != "" {
		labels, err := loadLabels(labelsPath)
		if err != nil {
			return nil, err
		}
		if len(labels) != total {
			return nil, fmt.Errorf("labels: %s has %d labels for %d images", labelsPath, len(labels), total)
		}
		s.Labels = make([]int, s.N)
		for i := range s.Labels {
			j := i
			if kept != nil {
				j = kept[i]
			}
			s.Labels[i] = labels[j]
		}
	}
	if opt.Samples > total {
		s.Notes = append(s.Notes, fmt.Sprintf("%s: %d samples asked for, using all %d", path, opt.Samples, total))
	}
	s.normalize(opt.Mean, opt.Std)
	return s, nil
}

// check validates the options before any data is read.
func (opt Options) check() error {
	fromData := opt.Height == 0 && opt.Width == 0
	if opt.Channels <= 0 || !fromData && (opt.Height <= 0 || opt.Width <= 0) || opt.Channels > maxDim || opt.Height > maxDim || opt.Width > maxDim {
		return fmt.Errorf("data: bad model input shape %d×%d×%d", opt.Channels, opt.Height, opt.Width)
	}
	if opt.Samples < 0 {
		return fmt.Errorf("data: samples is %d, want 0 (all) or more", opt.Samples)
	}
	for _, v := range []struct {
		name string
		vals []float32
	}{{"mean", opt.Mean}, {"std", opt.Std}} {
		if v.vals != nil && len(v.vals) != opt.Channels {
			return fmt.Errorf("data: %s has %d values, want one per channel (%d)", v.name, len(v.vals), opt.Channels)
		}
		for i, x := range v.vals {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("data: %s[%d] is %v", v.name, i, x)
			}
		}
	}
	for i, x := range opt.Std {
		if x == 0 {
			return fmt.Errorf("data: std[%d] is 0", i)
		}
	}
	return nil
}

// encoding says how a store holds its images.
type encoding int

const (
	encFloats encoding = iota // float32 values as they are used
	encBytes                  // one byte per value, scaled by 1/255
	encLuma                   // three byte planes (R, G, B) per image, decoded to one grey plane
)

// store holds the images of a Set and of every view of it.
type store struct {
	enc    encoding
	floats []float32
	bytes  []byte
	srcC   int // channels stored per image: 1 replicated to the Set's 3 when they differ
	// mean and inv normalise after scaling, x = (x − mean[c])·inv[c]; nil: none.
	mean, inv []float32
}

// newSet makes a Set of the first n images of st, in order.
func newSet(n, c, h, w int, st *store) *Set {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return &Set{N: n, C: c, H: h, W: w, st: st, idx: idx}
}

// NewSet makes a Set of n images of c×h×w from float values in NCHW order (used as they are).
func NewSet(n, c, h, w int, images []float32) *Set {
	if len(images) != n*c*h*w {
		panic(fmt.Sprintf("dataset.NewSet: %d values for %d images of %d×%d×%d", len(images), n, c, h, w))
	}
	return newSet(n, c, h, w, &store{enc: encFloats, floats: images, srcC: c})
}

// normalize makes every image read from s come out as x = (x − mean[c]) / std[c].
func (s *Set) normalize(mean, std []float32) {
	if mean == nil && std == nil {
		return
	}
	s.st.mean, s.st.inv = make([]float32, s.C), make([]float32, s.C)
	for c := 0; c < s.C; c++ {
		s.st.inv[c] = 1
		if mean != nil {
			s.st.mean[c] = mean[c]
		}
		if std != nil {
			s.st.inv[c] = 1 / std[c]
		}
	}
}

// Image decodes image i into dst, which holds C×H×W values.
func (s *Set) Image(i int, dst []float32) {
	st, plane := s.st, s.H*s.W
	j := s.idx[i]
	src := st.srcC * plane
	switch st.enc {
	case encFloats:
		for c := 0; c < s.C; c++ {
			copy(dst[c*plane:(c+1)*plane], st.floats[j*src+(c%st.srcC)*plane:][:plane])
		}
	case encBytes:
		for c := 0; c < s.C; c++ {
			u8ToUnit(dst[c*plane:(c+1)*plane], st.bytes[j*src+(c%st.srcC)*plane:][:plane])
		}
	case encLuma:
		lumaToUnit(dst[:plane], st.bytes[j*src:(j+1)*src])
	}
	if st.mean != nil {
		for c := 0; c < s.C; c++ {
			m, inv := st.mean[c], st.inv[c]
			p := dst[c*plane : (c+1)*plane]
			for k := range p {
				p[k] = (p[k] - m) * inv
			}
		}
	}
}

// Batch returns images [i·size, min((i+1)·size, N)) decoded into a new slice; the last batch may
// be short, and a batch past the end is nil.
func (s *Set) Batch(i, size int) []float32 {
	if size <= 0 || i < 0 || i*size >= s.N {
		return nil
	}
	per := s.C * s.H * s.W
	lo, hi := i*size, min((i+1)*size, s.N)
	out := make([]float32, (hi-lo)*per)
	for k := lo; k < hi; k++ {
		s.Image(k, out[(k-lo)*per:(k-lo+1)*per])
	}
	return out
}

// Floats decodes every image of s (for small sets and tests: it costs N×C×H×W floats).
func (s *Set) Floats() []float32 { return s.Batch(0, max(s.N, 1)) }

// Split shuffles the images with seed and holds back round(heldOut·N) of them for validation
// (at least one, and at most N−1, when heldOut > 0 and N ≥ 2). Both parts are views of s in
// shuffled order (no image is copied); the same seed gives the same split.
func (s *Set) Split(heldOut float64, seed uint64) (train, val *Set) {
	perm := permutation(s.N, seed)
	nv := 0
	if heldOut > 0 && !math.IsNaN(heldOut) {
		nv = int(math.Round(min(heldOut, 1) * float64(s.N)))
		if s.N >= 2 {
			nv = min(max(nv, 1), s.N-1)
		}
	}
	return s.subset(perm[nv:]), s.subset(perm[:nv])
}

// subset is a view of the images at idx, in that order.
func (s *Set) subset(idx []int) *Set {
	out := &Set{N: len(idx), C: s.C, H: s.H, W: s.W, st: s.st, idx: make([]int, len(idx)), Source: s.Source,
		Classes: s.Classes, Notes: append([]string(nil), s.Notes...)}
	if s.Labels != nil {
		out.Labels = make([]int, len(idx))
	}
	for k, j := range idx {
		out.idx[k] = s.idx[j]
		if s.Labels != nil {
			out.Labels[k] = s.Labels[j]
		}
	}
	return out
}

// permutation is a Fisher–Yates shuffle of 0..n-1 driven by PCG, whose output sequence is fixed,
// so a seed gives the same order in every Go release.
func permutation(n int, seed uint64) []int {
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	rng := rand.NewPCG(seed, 0x9e3779b97f4a7c15)
	for i := n - 1; i > 0; i-- {
		j := int(rng.Uint64() % uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm
}

// ParseFloats parses a comma-separated list such as "0.485,0.456,0.406" (the --mean and --std
// values). An empty string gives nil.
func ParseFloats(s string) ([]float32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]float32, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("bad number %q in %q", strings.TrimSpace(p), s)
		}
		out[i] = float32(v)
	}
	return out, nil
}

// pathErr makes "kind: path: cause" from an os error, without repeating the path.
func pathErr(kind, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %s: %w", kind, path, pe.Err)
	}
	return fmt.Errorf("%s: %s: %w", kind, path, err)
}

// Head returns the first n images (and labels) as a view of s, or s itself when it has no more.
func (s *Set) Head(n int) *Set {
	if n >= s.N {
		return s
	}
	h := *s
	h.N = n
	h.idx = s.idx[:n]
	if s.Labels != nil {
		h.Labels = s.Labels[:n]
	}
	return &h
}

// Range returns images [lo, hi) (and their labels) as a view of s, clamped to the set.
func (s *Set) Range(lo, hi int) *Set {
	lo, hi = max(0, min(lo, s.N)), max(0, min(hi, s.N))
	if hi < lo {
		hi = lo
	}
	r := *s
	r.N = hi - lo
	r.idx = s.idx[lo:hi]
	if s.Labels != nil {
		r.Labels = s.Labels[lo:hi]
	}
	return &r
}

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
	// Channels, Height and Width are the model's input shape C×H×W (without the batch).
	Channels, Height, Width int
	// Samples keeps at most that many images (0 = all); see the package comment for which.
	Samples int
	// Mean and Std, one value per channel, normalise after scaling; nil means 0 and 1.
	Mean, Std []float32
	// Seed picks the sampled files of a folder.
	Seed uint64
}

// maxDim bounds each of the model's input dimensions, maxFloats the values a Set may hold (64 GiB).
const (
	maxDim    = 1 << 16
	maxFloats = 1 << 34
)

// Set is a batch of images in NCHW order with optional labels.
type Set struct {
	N, C, H, W int
	// Images holds N×C×H×W values, scaled (and normalised when asked).
	Images []float32
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
	if opt.Channels <= 0 || opt.Height <= 0 || opt.Width <= 0 || opt.Channels > maxDim || opt.Height > maxDim || opt.Width > maxDim {
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

// normalize applies x = (x − mean[c]) / std[c].
func (s *Set) normalize(mean, std []float32) {
	if mean == nil && std == nil {
		return
	}
	plane := s.H * s.W
	for c := 0; c < s.C; c++ {
		m, inv := float32(0), float32(1)
		if mean != nil {
			m = mean[c]
		}
		if std != nil {
			inv = 1 / std[c]
		}
		for n := 0; n < s.N; n++ {
			p := s.Images[(n*s.C+c)*plane : (n*s.C+c+1)*plane]
			for i := range p {
				p[i] = (p[i] - m) * inv
			}
		}
	}
}

// Batch returns images [i·size, min((i+1)·size, N)) as a view into Images (no copy); the last
// batch may be short, and a batch past the end is nil.
func (s *Set) Batch(i, size int) []float32 {
	if size <= 0 || i < 0 || i*size >= s.N {
		return nil
	}
	per := s.C * s.H * s.W
	return s.Images[i*size*per : min((i+1)*size, s.N)*per]
}

// Split shuffles the images with seed and holds back round(heldOut·N) of them for validation
// (at least one, and at most N−1, when heldOut > 0 and N ≥ 2). Both parts are copies in shuffled
// order; the same seed gives the same split.
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

// subset copies the images at idx in that order.
func (s *Set) subset(idx []int) *Set {
	per := s.C * s.H * s.W
	out := &Set{N: len(idx), C: s.C, H: s.H, W: s.W, Source: s.Source,
		Classes: s.Classes, Notes: append([]string(nil), s.Notes...)}
	out.Images = make([]float32, len(idx)*per)
	if s.Labels != nil {
		out.Labels = make([]int, len(idx))
	}
	for k, j := range idx {
		copy(out.Images[k*per:(k+1)*per], s.Images[j*per:(j+1)*per])
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
	h.Images = s.Images[:n*s.C*s.H*s.W]
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
	per := s.C * s.H * s.W
	r.Images = s.Images[lo*per : hi*per]
	if s.Labels != nil {
		r.Labels = s.Labels[lo:hi]
	}
	return &r
}

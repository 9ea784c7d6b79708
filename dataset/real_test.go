package dataset

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
)

// requireFile skips (or fails under CHANOPT_REQUIRE_ALL=1) when path is absent.
func requireFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		testenv.Missing(t, "%s is absent", path)
	}
}

// classCounts counts labels per class.
func classCounts(labels []int) []int {
	var n []int
	for _, l := range labels {
		for len(n) <= l {
			n = append(n, 0)
		}
		n[l]++
	}
	return n
}

func TestBundledCalibration(t *testing.T) {
	dir := filepath.Join(testenv.ModelsDir(t), "data")
	img := filepath.Join(dir, "calib-images-idx3-ubyte.gz")
	lab := filepath.Join(dir, "calib-labels-idx1-ubyte.gz")
	requireFile(t, img)
	requireFile(t, lab)
	s, err := Load(img, lab, Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 2000 || len(s.Floats()) != 2000*28*28 || len(s.Labels) != 2000 {
		t.Fatalf("N=%d images=%d labels=%d, want 2000", s.N, len(s.Floats()), len(s.Labels))
	}
	lo, hi := slices.Min(s.Floats()), slices.Max(s.Floats())
	if lo != 0 || hi != 1 {
		t.Errorf("values span [%v, %v], want [0, 1]", lo, hi)
	}
	if counts := classCounts(s.Labels); len(counts) != 10 || slices.Min(counts) == 0 {
		t.Errorf("class counts %v, want all 10 classes", counts)
	}
	// A subset keeps the first images and their labels.
	sub, err := Load(img, lab, Options{Channels: 1, Height: 28, Width: 28, Samples: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sub.Floats(), s.Floats()[:100*784]) || !slices.Equal(sub.Labels, s.Labels[:100]) {
		t.Errorf("Samples: 100 is not the first 100 images with their labels")
	}
}

func TestFashionMNIST(t *testing.T) {
	dir := "/usr/share/datasets/fashion-mnist"
	img := filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
	lab := filepath.Join(dir, "t10k-labels-idx1-ubyte.gz")
	requireFile(t, img)
	requireFile(t, lab)
	s, err := Load(img, lab, Options{Channels: 1, Height: 28, Width: 28})
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 10000 || len(s.Floats()) != 10000*784 {
		t.Fatalf("N=%d, want 10000", s.N)
	}
	// Reference values computed with Python's gzip over the raw bytes.
	if !slices.Equal(s.Labels[:10], []int{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}) {
		t.Errorf("first labels %v", s.Labels[:10])
	}
	if counts := classCounts(s.Labels); !slices.Equal(counts, []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}) {
		t.Errorf("class counts %v", counts)
	}
	var first, all float64
	for i, v := range s.Floats() {
		if i < 784 {
			first += float64(v) * 255
		}
		all += float64(v) * 255
	}
	if !near(float32(first), 33456, 0.1) || !near(float32(all/float64(len(s.Floats()))), 73.146567, 1e-3) {
		t.Errorf("pixel sum of image 0 = %v (want 33456), mean = %v (want 73.1466)", first, all/float64(len(s.Floats())))
	}
	if got := s.Floats()[14*28+14] * 255; !near(got, 110, 1e-3) {
		t.Errorf("image 0 pixel (14,14) = %v, want 110", got)
	}
	// Grey to RGB with ImageNet normalisation on a subset.
	rgb, err := Load(img, lab, Options{Channels: 3, Height: 28, Width: 28, Samples: 64,
		Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}})
	if err != nil {
		t.Fatal(err)
	}
	if rgb.N != 64 || len(rgb.Notes) != 1 || !slices.Equal(rgb.Labels, s.Labels[:64]) {
		t.Fatalf("N=%d notes=%q", rgb.N, rgb.Notes)
	}
	if got, want := rgb.Floats()[2*784+14*28+14], (float32(110)/255-0.406)/0.225; !near(got, want, 1e-5) {
		t.Errorf("blue channel pixel = %v, want %v", got, want)
	}
}

func TestFashionMNISTTrainSubset(t *testing.T) {
	img := "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
	requireFile(t, img)
	// Only 10 images are kept, but the whole stream is still checked (length and gzip CRC).
	s, err := Load(img, "", Options{Channels: 1, Height: 28, Width: 28, Samples: 10})
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 10 || len(s.Floats()) != 10*784 {
		t.Fatalf("N=%d len=%d", s.N, len(s.Floats()))
	}
}

// TestBundledEvalNPY checks the two readers against each other: eval16.npy holds the first 16
// images of the bundled eval set as float32.
func TestBundledEvalNPY(t *testing.T) {
	dir := filepath.Join(testenv.ModelsDir(t), "data")
	npyPath := filepath.Join(dir, "eval16.npy")
	img := filepath.Join(dir, "eval-images-idx3-ubyte.gz")
	lab := filepath.Join(dir, "eval-labels-idx1-ubyte.gz")
	for _, p := range []string{npyPath, img, lab} {
		requireFile(t, p)
	}
	opt := Options{Channels: 1, Height: 28, Width: 28}
	a, err := Load(npyPath, "", opt)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Load(img, lab, opt)
	if err != nil {
		t.Fatal(err)
	}
	if a.N != 16 || all.N != 1000 || len(all.Labels) != 1000 {
		t.Fatalf("eval16 N=%d, eval N=%d labels=%d", a.N, all.N, len(all.Labels))
	}
	if !slices.Equal(a.Floats(), all.Batch(0, 16)) {
		t.Errorf("eval16.npy differs from the first 16 IDX eval images")
	}
}

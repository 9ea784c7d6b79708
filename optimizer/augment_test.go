package optimizer

import (
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// ramps is a batch of n images of c×h×w whose values differ by image, channel, row and column.
func ramps(n, c, h, w int) []float32 {
	x := make([]float32, n*c*h*w)
	for i := range x {
		b, rest := i/(c*h*w), i%(c*h*w)
		ch, pix := rest/(h*w), rest%(h*w)
		x[i] = float32(b) + 0.1*float32(ch) + 0.01*float32(pix/w) + 0.001*float32(pix%w)
	}
	return x
}

// TestAugmenterViews checks what each alteration does to a batch: identity settings leave it as
// it was; a flip alone mirrors each image exactly or leaves it; crops only blend pixels of the
// same image and channel (each value within that plane's range) and keep a constant image
// constant; mixup makes each image the weighted blend its record says; and the same seed draws the
// same views.
func TestAugmenterViews(t *testing.T) {
	const n, c, h, w = 6, 2, 7, 9
	orig := ramps(n, c, h, w)
	per, plane := c*h*w, h*w
	run := func(aug Augmentation, seed uint64, x []float32) *augmenter {
		a := newAugmenter(aug, seed, n, c, h, w)
		a.apply(x, n)
		return a
	}
	for _, tc := range []struct {
		name string
		aug  Augmentation
	}{
		{"none", Augmentation{}},
		{"crop 1 (none)", Augmentation{MinCrop: 1}},
		{"flip", Augmentation{Flip: true}},
		{"crop", Augmentation{MinCrop: 0.7}},
		{"mixup", Augmentation{Mixup: true}},
		{"mixup, crop, flip", Augmentation{Mixup: true, MinCrop: 0.8, Flip: true}},
	} {
		x := slices.Clone(orig)
		a := run(tc.aug, 3, x)
		again := slices.Clone(orig)
		run(tc.aug, 3, again)
		if !slices.Equal(x, again) {
			t.Errorf("%s: the same seed drew different views", tc.name)
		}
		other := slices.Clone(orig)
		run(tc.aug, 4, other)
		if tc.aug.None() != slices.Equal(x, other) {
			t.Errorf("%s: another seed drew the same views %v (want the same only when nothing is altered)", tc.name, slices.Equal(x, other))
		}
		switch tc.name {
		case "none", "crop 1 (none)":
			if !slices.Equal(x, orig) {
				t.Errorf("%s: the batch changed", tc.name)
			}
		case "flip":
			flipped := 0
			for b := range n {
				img, src := x[b*per:(b+1)*per], orig[b*per:(b+1)*per]
				mirror := make([]float32, per)
				for p := range per {
					row, col := p/w, p%w
					mirror[p] = src[row*w+w-1-col]
				}
				switch {
				case slices.Equal(img, mirror):
					flipped++
				case !slices.Equal(img, src):
					t.Errorf("flip: image %d is neither itself nor its mirror", b)
				}
			}
			if flipped == 0 || flipped == n {
				t.Errorf("flip: %d of %d images mirrored, want some and not all", flipped, n)
			}
		case "crop":
			changed := 0
			for b := range n {
				for ch := range c {
					p := x[b*per+ch*plane : b*per+(ch+1)*plane]
					o := orig[b*per+ch*plane : b*per+(ch+1)*plane]
					lo, hi := slices.Min(o), slices.Max(o)
					for _, v := range p {
						if v < lo-1e-5 || v > hi+1e-5 {
							t.Fatalf("crop: image %d channel %d has %g outside its plane's [%g, %g]", b, ch, v, lo, hi)
						}
					}
					if !slices.Equal(p, o) {
						changed++
					}
				}
			}
			if changed == 0 {
				t.Errorf("crop: no plane changed")
			}
			flat := make([]float32, n*per)
			for i := range flat {
				flat[i] = 0.25
			}
			run(tc.aug, 5, flat)
			for _, v := range flat {
				if math.Abs(float64(v)-0.25) > 1e-6 {
					t.Fatalf("crop: a constant image became %g", v)
				}
			}
		case "mixup":
			mixed := 0
			for b := range n {
				wt, q := a.weight[b], a.partner[b]
				if wt < 0 || wt > 1 || q < 0 || q >= n {
					t.Fatalf("mixup: image %d has weight %g and partner %d", b, wt, q)
				}
				if q != b {
					mixed++
				}
				for k := range per {
					want := float32(wt)*orig[b*per+k] + (1-float32(wt))*orig[q*per+k]
					if math.Abs(float64(x[b*per+k]-want)) > 1e-5 {
						t.Fatalf("mixup: image %d value %d is %g, want %g·own + (1−%g)·image %d = %g", b, k, x[b*per+k], wt, wt, q, want)
					}
				}
			}
			if mixed == 0 {
				t.Errorf("mixup: no image was blended with another")
			}
		}
	}
}

// TestMixedCrossEntropy checks the blended-label loss against the engine's cross-entropy (weight
// 1 is plain cross-entropy on the image's own label), its gradient by finite differences, and that
// a label beyond the classes is an error, not a panic.
func TestMixedCrossEntropy(t *testing.T) {
	logits := engine.NewTensor([]int{3, 4}, []float32{0.5, -1, 2, 0.1, 1, 1, 1, 1, -2, 3, 0.5, 0})
	labels := []int{2, 0, 1}
	partner := []int{1, 2, 0}
	grad := &engine.Tensor{}
	plain := &engine.Tensor{}
	l, err := mixedCrossEntropyInto(grad, logits, labels, partner, []float64{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.CrossEntropyInto(plain, logits, labels)
	if math.Abs(l-want) > 1e-9 {
		t.Errorf("weight 1: loss %g, cross-entropy %g", l, want)
	}
	for i := range grad.Data {
		if math.Abs(float64(grad.Data[i]-plain.Data[i])) > 1e-6 {
			t.Fatalf("weight 1: gradient %v, cross-entropy's %v", grad.Data, plain.Data)
		}
	}
	weight := []float64{0.3, 0.8, 0}
	if _, err := mixedCrossEntropyInto(grad, logits, labels, partner, weight); err != nil {
		t.Fatal(err)
	}
	for i := range logits.Data {
		const eps = 1e-3
		v := logits.Data[i]
		logits.Data[i] = v + eps
		up, _ := mixedCrossEntropyInto(&engine.Tensor{}, logits, labels, partner, weight)
		logits.Data[i] = v - eps
		down, _ := mixedCrossEntropyInto(&engine.Tensor{}, logits, labels, partner, weight)
		logits.Data[i] = v
		if fd := (up - down) / (2 * eps); math.Abs(fd-float64(grad.Data[i])) > 1e-3 {
			t.Errorf("gradient %d is %g, finite difference %g", i, grad.Data[i], fd)
		}
	}
	if _, err := mixedCrossEntropyInto(grad, logits, []int{2, 4, 1}, partner, weight); err == nil {
		t.Errorf("label 4 of 4 classes: no error")
	}
}

// TestFineTuneAugmented fine-tunes a three-quarter-width resnet8 on 300 images with mixup and
// crops (the teacher run on each batch): the same seed gives the same weights, the result
// differs from the fine-tune without augmentation (the cached teacher), and it does not lose
// held-back agreement against the slice it started from. Without augmentation, the teacher run
// on each batch (as for outputs too large to cache) gives the weights of the cached teacher.
func TestFineTuneAugmented(t *testing.T) {
	set := labelledCalib(t, 400)
	calib, val := set.Split(0.25, 1)
	teacher, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "resnet8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, student := threeQuarterSlice(t, teacher)
	valT, err := teacherOutputs(teacher, val, 64, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	start, err := evalStudent(student, val, valT, DistillOptions{Batch: 64, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	tune := func(aug Augmentation, cacheBytes int) (*onnx.Model, Agreement) {
		s := student.Clone()
		ft, err := FineTune(teacher, s, calib, val, valT, FineTuneOptions{Epochs: 2, Batch: 32, Threads: 2, Seed: 5, LabelWeight: 0.5, Augment: aug,
			cacheBytes: cacheBytes})
		if err != nil {
			t.Fatal(err)
		}
		if ft.TimeBound {
			t.Errorf("a fine-tune with no time limit says its time limit set its schedule")
		}
		return s, ft.Agreement
	}
	// A time limit shorter than a step sets the schedule, and the result says so; one far longer
	// than the run does not (the first step once counted as ahead of its time).
	ft, err := FineTune(teacher, student.Clone(), calib, val, valT, FineTuneOptions{Epochs: 2, Batch: 32, Threads: 2, Seed: 5, MaxTime: time.Nanosecond})
	if err != nil || !ft.TimeBound {
		t.Errorf("a fine-tune limited to 1 ns: time bound %v, error %v; want true, nil", ft.TimeBound, err)
	}
	ft, err = FineTune(teacher, student.Clone(), calib, val, valT, FineTuneOptions{Epochs: 0.25, Batch: 32, Threads: 2, Seed: 5, MaxTime: time.Hour})
	if err != nil || ft.TimeBound {
		t.Errorf("a fine-tune limited to an hour: time bound %v, error %v; want false, nil", ft.TimeBound, err)
	}
	weights := func(m *onnx.Model) []float32 {
		var all []float32
		for _, name := range slices.Sorted(maps.Keys(m.Graph.Inits)) {
			all = append(all, m.Graph.Inits[name].Floats...)
		}
		return all
	}
	aug := Augmentation{Mixup: true, MinCrop: 0.85}
	one, ag := tune(aug, 0)
	two, _ := tune(aug, 0)
	plain, _ := tune(Augmentation{}, 0)
	perBatch, _ := tune(Augmentation{}, -1)
	t.Logf("held-back agreement: slice %.3f, fine-tuned with %s %.3f", start.Top1, aug, ag.Top1)
	if !slices.Equal(weights(one), weights(two)) {
		t.Errorf("two augmented fine-tunes with seed 5 gave different weights")
	}
	// The teacher's outputs computed batch by batch are the ones it would have cached.
	if !slices.Equal(weights(plain), weights(perBatch)) {
		t.Errorf("the fine-tune with the teacher run on each batch gave other weights than with its outputs cached")
	}
	if slices.Equal(weights(one), weights(plain)) {
		t.Errorf("the augmented fine-tune gave the weights of the plain one")
	}
	if ag.Top1 < start.Top1 {
		t.Errorf("held-back agreement fell from %.3f to %.3f", start.Top1, ag.Top1)
	}
}

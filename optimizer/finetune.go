package optimizer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
)

// FineTuneOptions configures knowledge-distillation fine-tuning.
type FineTuneOptions struct {
	Epochs      float64 // passes over the calibration images (fractions allowed)
	Batch       int
	LR          float64 // Adam's base learning rate, cosine-annealed
	Temperature float64 // softening of both models' logits in the KL loss
	LabelWeight float64 // weight of the cross-entropy with labels, when the data has them
	Threads     int
	Seed        uint64
	MaxTime     time.Duration // stop early after this long (0: none)
	// EvalEvery is how many steps pass between held-back checks (0: once per epoch).
	EvalEvery int
	Progress  func(step, total int, loss float64)
	// Context, if set, stops the fine-tuning with its error when it is cancelled.
	Context context.Context
	// Augment alters every batch before the teacher and the student see it, and the teacher then
	// runs on each batch (zero: the images as they are). Off by default: no setting measured so
	// far raised agreement on unseen images (augment.go).
	Augment Augmentation
	// Adapt, if set, may replace the student while it trains (CONetV2's adaptive sizing: see
	// adapter). It is called at AdaptPoints points evenly spaced over the schedule, the k-th (from
	// 1) once k/(AdaptPoints+1) of it is done, with the epoch reached and a copy of the student
	// holding the weights trained so far. A model it returns is trained from there on, with the
	// optimiser's moments started afresh (nil: the same student goes on). Nil Adapt: no points.
	Adapt       func(point, points int, epoch float64, current *onnx.Model) (*onnx.Model, error)
	AdaptPoints int
	// cacheBytes replaces teacherCacheBytes when not zero (negative: never cache), for tests.
	cacheBytes int
}

// teacherCacheBytes bounds the teacher's outputs the fine-tune keeps for every calibration image
// when it does not augment (class logits of 54,000 images are 2 MB; a segmentation map of each
// would be gigabytes): beyond it the teacher runs on each batch instead.
const teacherCacheBytes = 64 << 20

// FineTune trains the student to match the teacher's outputs with Adam and a cosine schedule,
// each output by the loss that fits its kind (KL at temperature T on logits, KL on probabilities,
// per-pixel Bernoulli KL or relative MSE on maps, cosine distance on embeddings; summed over
// outputs), plus cross-entropy on the first logits output when labels are given. It checks the
// agreement on the held-back images regularly and keeps the best weights seen (early stopping).
// BN keeps its running statistics during training; each check also tries them recalibrated. It
// returns the held-back agreement of the kept weights and the number of steps taken. valTeacher
// are the teacher's outputs on val, whose kinds the calibration outputs take.
//
// With opt.Augment each batch is altered first (augment.go) and the teacher runs on the altered
// batch, so the student learns the teacher's function around the images and not only its outputs
// on them. Otherwise the teacher's outputs on every image are computed once, when they fit
// teacherCacheBytes, or on each batch when they do not (the same values either way).
func FineTune(teacher, student *onnx.Model, calib, val *dataset.Set, valTeacher *Outputs, opt FineTuneOptions) (FineTuneResult, error) {
	if opt.Batch <= 0 {
		opt.Batch = 64
	}
	opt.Batch = trainBatch(student, opt.Batch)
	if opt.LR <= 0 {
		opt.LR = 1e-3
	}
	if opt.Temperature <= 0 {
		opt.Temperature = 4
	}
	if opt.Epochs <= 0 {
		opt.Epochs = 1
	}
	kinds := map[string]OutputKind{}
	for _, k := range valTeacher.Kinds {
		kinds[k.Name] = k.Kind
	}
	aug := opt.Augment
	perImage := 0
	for i := range valTeacher.Data {
		perImage += 4 * valTeacher.Per(i)
	}
	// The teacher's outputs on every calibration image, computed once, when the images are seen
	// as they are and the outputs are small; otherwise the teacher runs on each batch (ref only
	// names and shapes the outputs).
	ref := valTeacher
	var tp *engine.Program
	cacheBytes := teacherCacheBytes
	if opt.cacheBytes != 0 {
		cacheBytes = opt.cacheBytes
	}
	if aug.None() && calib.N*perImage <= cacheBytes {
		tout, err := teacherOutputs(teacher, calib, 256, opt.Threads, kinds)
		if err != nil {
			return FineTuneResult{}, err
		}
		for i := range tout.Dims {
			if tout.Per(i) != valTeacher.Per(i) {
				return FineTuneResult{}, fmt.Errorf("the teacher's output %s is %v per calibration image, %v per held-back one", tout.Kinds[i].Name, tout.Dims[i], valTeacher.Dims[i])
			}
		}
		ref = tout
	} else {
		var err error
		if tp, err = engine.Compile(teacher, engine.Options{Threads: opt.Threads}); err != nil {
			return FineTuneResult{}, err
		}
		defer tp.Close()
	}
	// The student trained: the caller's, until Adapt replaces it.
	caller := student
	tr, err := engine.NewTrainer(student, engine.TrainOptions{Threads: opt.Threads, SkipInputGrad: true})
	if err != nil {
		return FineTuneResult{}, err
	}
	defer func() { tr.Close() }()
	params := tr.Params()
	adam := &engine.Adam{WeightDecay: 1e-4, Decoupled: true}
	// Adaptation points: the next one and how many replacements the student has had (the
	// generation of its weights, and of the best ones kept).
	point, generation, bestGeneration := 1, 0, 0
	per := calib.C * calib.H * calib.W
	steps := int(opt.Epochs * float64(calib.N) / float64(opt.Batch))
	if steps < 1 {
		steps = 1
	}
	evalEvery := opt.EvalEvery
	if evalEvery <= 0 {
		evalEvery = max(1, calib.N/opt.Batch)
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 29))
	var views *augmenter
	if !aug.None() {
		views = newAugmenter(aug, opt.Seed, opt.Batch, calib.C, calib.H, calib.W)
	}
	// The teacher program's output each target reads, when the teacher runs on each batch.
	teacherOut := map[string]int{}
	if tp != nil {
		for j, name := range tp.Outputs() {
			teacherOut[name] = j
		}
	}
	order := rng.Perm(calib.N)
	pos := 0
	x := engine.NewTensor([]int{opt.Batch, calib.C, calib.H, calib.W}, make([]float32, opt.Batch*per))
	// One teacher batch and one gradient per distilled output.
	type target struct {
		out  Output
		i    int
		t    *engine.Tensor
		grad *engine.Tensor
	}
	var targets []target
	for i, k := range ref.Kinds {
		if k.Kind == KindOther {
			continue
		}
		n := ref.Per(i)
		shape := append([]int{opt.Batch}, ref.Dims[i]...)
		if k.Kind != KindMap {
			shape = []int{opt.Batch, n}
		}
		targets = append(targets, target{out: k, i: i, t: engine.NewTensor(shape, make([]float32, opt.Batch*n)), grad: &engine.Tensor{}})
	}
	labelOut := -1 // the output the labels train: the first logits
	if calib.Labels != nil && opt.LabelWeight > 0 {
		for j, tg := range targets {
			if tg.out.Kind == KindLogits {
				labelOut = j
				break
			}
		}
	}
	labels := make([]int, opt.Batch)
	grads := map[string]*engine.Tensor{}
	ceGrad := &engine.Tensor{}

	check := func(m *onnx.Model) (Agreement, error) {
		return evalStudent(m, val, valTeacher, DistillOptions{Batch: 256, Threads: opt.Threads})
	}
	best, err := check(student)
	if err != nil {
		return FineTuneResult{}, err
	}
	bestModel := student.Clone()
	start := time.Now()
	step := 0
	warmup := min(50, steps/10)
	timeBound := false
	for ; step < steps; step++ {
		if opt.Context != nil && opt.Context.Err() != nil {
			return FineTuneResult{Steps: step}, opt.Context.Err()
		}
		// The schedule runs on whichever ends first, the steps or the time: when the time cap
		// binds, the learning rate still decays to zero by the end instead of stopping at its
		// peak, which would leave the weights noisy.
		done := float64(step) / float64(steps)
		if opt.MaxTime > 0 && step > 0 {
			// From the first step on: at step 0 any elapsed time is ahead of no steps, which
			// would call every capped run time-bound.
			if byTime := float64(time.Since(start)) / float64(opt.MaxTime); byTime > done {
				done, timeBound = byTime, true
			}
		}
		if done >= 1 {
			break
		}
		if opt.Adapt != nil && point <= opt.AdaptPoints && done >= float64(point)/float64(opt.AdaptPoints+1) {
			cur := student.Clone()
			tr.WriteBack(cur)
			next, err := opt.Adapt(point, opt.AdaptPoints, done*opt.Epochs, cur)
			if err != nil {
				return FineTuneResult{Steps: step}, fmt.Errorf("adaptive sizing: %w", err)
			}
			point++
			if next != nil {
				ntr, err := engine.NewTrainer(next, engine.TrainOptions{Threads: opt.Threads, SkipInputGrad: true})
				if err != nil {
					return FineTuneResult{Steps: step}, fmt.Errorf("adaptive sizing: %w", err)
				}
				tr.Close()
				tr, student, generation = ntr, next, generation+1
				params = tr.Params()
				adam = &engine.Adam{WeightDecay: 1e-4, Decoupled: true}
			}
		}
		for b := 0; b < opt.Batch; b++ {
			if pos == len(order) {
				order, pos = rng.Perm(calib.N), 0
			}
			i := order[pos]
			pos++
			calib.Image(i, x.Data[b*per:(b+1)*per])
			if tp == nil {
				for _, tg := range targets {
					n := ref.Per(tg.i)
					copy(tg.t.Data[b*n:(b+1)*n], ref.Data[tg.i][i*n:(i+1)*n])
				}
			}
			if calib.Labels != nil {
				labels[b] = calib.Labels[i]
			}
		}
		if views != nil {
			views.apply(x.Data, opt.Batch)
		}
		if tp != nil {
			// The teacher sees the very batch the student will: its outputs are the targets.
			ys, err := tp.RunSlice(x)
			if err != nil {
				return FineTuneResult{Steps: step}, err
			}
			for _, tg := range targets {
				j, ok := teacherOut[tg.out.Name]
				if !ok || ys[j].Len() != tg.t.Len() {
					return FineTuneResult{Steps: step}, fmt.Errorf("the teacher's output %s on a batch of %d does not have the %v values of its held-back outputs", tg.out.Name, opt.Batch, tg.t.Shape)
				}
				copy(tg.t.Data, ys[j].Data)
			}
		}
		tr.ZeroGrad()
		outs, err := tr.ForwardKeep(x)
		if err != nil {
			return FineTuneResult{Steps: step}, err
		}
		loss := 0.0
		for j, tg := range targets {
			out := outs[tg.out.Name]
			if out == nil || out.Len() != tg.t.Len() {
				return FineTuneResult{Steps: step}, fmt.Errorf("the student's output %s does not match the teacher's %v", tg.out.Name, tg.t.Shape)
			}
			s := engine.NewTensor(tg.t.Shape, out.Data) // viewed as the loss wants it (rows per image)
			loss += outputLoss(tg.grad, s, tg.t, tg.out, opt.Temperature, valTeacher.mseScale(tg.i))
			if j == labelOut {
				if views != nil && aug.Mixup {
					ce, err := mixedCrossEntropyInto(ceGrad, s, labels, views.partner, views.weight)
					if err != nil {
						return FineTuneResult{Steps: step}, err
					}
					loss += opt.LabelWeight * ce
				} else {
					loss += opt.LabelWeight * engine.CrossEntropyInto(ceGrad, s, labels)
				}
				for k := range tg.grad.Data {
					tg.grad.Data[k] += float32(opt.LabelWeight) * ceGrad.Data[k]
				}
			}
			grads[tg.out.Name] = engine.NewTensor(out.Shape, tg.grad.Data)
		}
		if err := tr.BackwardFrom(grads); err != nil {
			return FineTuneResult{Steps: step}, err
		}
		engine.ClipGradNorm(params, 5)
		lr := opt.LR * 0.5 * (1 + math.Cos(math.Pi*done))
		if step < warmup {
			lr = opt.LR * float64(step+1) / float64(warmup)
		}
		adam.Step(params, lr)
		if opt.Progress != nil {
			opt.Progress(step+1, steps, loss)
		}
		if (step+1)%evalEvery == 0 || step == steps-1 || (opt.MaxTime > 0 && time.Since(start) >= opt.MaxTime) {
			cand := student.Clone()
			tr.WriteBack(cand)
			// The weights were trained against the frozen running statistics, under which each BN
			// is a fixed affine map: recalibrating them changes the function that was trained. It
			// helps some models (statistics drifted far) and ruins others (resnet8_bn lost 15
			// points), so both are measured and the better one is a candidate.
			ag, err := check(cand)
			if err != nil {
				return FineTuneResult{Steps: step}, err
			}
			recal := cand.Clone()
			if n, err := RecalibrateBN(recal, calib.Head(512), 128, opt.Threads); err != nil {
				return FineTuneResult{Steps: step}, err
			} else if n > 0 {
				rag, err := check(recal)
				if err != nil {
					return FineTuneResult{Steps: step}, err
				}
				if better(rag, ag) {
					ag, cand = rag, recal
				}
			}
			if better(ag, best) {
				best, bestModel, bestGeneration = ag, cand, generation
			}
		}
	}
	*caller.Graph = *bestModel.Graph
	return FineTuneResult{Agreement: best, Steps: step, TimeBound: timeBound, Generation: bestGeneration}, nil
}

// FineTuneResult is what a fine-tune did.
type FineTuneResult struct {
	Agreement Agreement // the kept student's, on the held-back images
	Steps     int       // training steps taken
	// TimeBound says MaxTime set the learning-rate schedule at some step (or ended the run): the
	// weights then depend on the machine's speed.
	TimeBound bool
	// Generation is how many of Adapt's replacements the kept weights come after (0: they are
	// the student's as given, trained).
	Generation int
}

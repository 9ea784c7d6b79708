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
}

// FineTune trains the student to match the teacher's softened outputs (KL at temperature T, plus
// cross-entropy when labels are given) with Adam and a cosine schedule, checking the agreement on
// the held-back images regularly and keeping the best weights seen (early stopping). BN keeps its
// running statistics during training; each check also tries them recalibrated. It returns the held-back
// agreement of the kept weights and the number of steps taken.
func FineTune(teacher, student *onnx.Model, calib, val *dataset.Set, valTeacher []float32, classes int, opt FineTuneOptions) (Agreement, int, error) {
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
	// The teacher's logits on every calibration image, once.
	tp, err := engine.Compile(teacher, engine.Options{Threads: opt.Threads})
	if err != nil {
		return Agreement{}, 0, err
	}
	tlog, k, err := Logits(tp, calib, inferBatch(teacher, 256))
	tp.Close()
	if err != nil {
		return Agreement{}, 0, err
	}
	if k != classes {
		return Agreement{}, 0, fmt.Errorf("teacher gives %d classes on calibration images, %d on held-back ones", k, classes)
	}
	tr, err := engine.NewTrainer(student, engine.TrainOptions{Threads: opt.Threads, SkipInputGrad: true})
	if err != nil {
		return Agreement{}, 0, err
	}
	defer tr.Close()
	params := tr.Params()
	adam := &engine.Adam{WeightDecay: 1e-4, Decoupled: true}
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
	order := rng.Perm(calib.N)
	pos := 0
	x := engine.NewTensor([]int{opt.Batch, calib.C, calib.H, calib.W}, make([]float32, opt.Batch*per))
	tb := engine.NewTensor([]int{opt.Batch, classes}, make([]float32, opt.Batch*classes))
	labels := make([]int, opt.Batch)
	grad := &engine.Tensor{}
	ceGrad := &engine.Tensor{}

	check := func(m *onnx.Model) (Agreement, error) {
		return evalStudent(m, val, valTeacher, classes, DistillOptions{Batch: 256, Threads: opt.Threads})
	}
	best, err := check(student)
	if err != nil {
		return Agreement{}, 0, err
	}
	bestModel := student.Clone()
	start := time.Now()
	step := 0
	warmup := min(50, steps/10)
	for ; step < steps; step++ {
		if opt.Context != nil && opt.Context.Err() != nil {
			return Agreement{}, step, opt.Context.Err()
		}
		// The schedule runs on whichever ends first, the steps or the time: when the time cap
		// binds, the learning rate still decays to zero by the end instead of stopping at its
		// peak, which would leave the weights noisy.
		done := float64(step) / float64(steps)
		if opt.MaxTime > 0 {
			done = max(done, float64(time.Since(start))/float64(opt.MaxTime))
		}
		if done >= 1 {
			break
		}
		for b := 0; b < opt.Batch; b++ {
			if pos == len(order) {
				order, pos = rng.Perm(calib.N), 0
			}
			i := order[pos]
			pos++
			calib.Image(i, x.Data[b*per:(b+1)*per])
			copy(tb.Data[b*classes:(b+1)*classes], tlog[i*classes:(i+1)*classes])
			if calib.Labels != nil {
				labels[b] = calib.Labels[i]
			}
		}
		tr.ZeroGrad()
		out, err := tr.Forward(x)
		if err != nil {
			return Agreement{}, step, err
		}
		loss := engine.KLDivInto(grad, out, tb, opt.Temperature)
		if calib.Labels != nil && opt.LabelWeight > 0 {
			loss += opt.LabelWeight * engine.CrossEntropyInto(ceGrad, out, labels)
			for j := range grad.Data {
				grad.Data[j] += float32(opt.LabelWeight) * ceGrad.Data[j]
			}
		}
		if err := tr.Backward(grad); err != nil {
			return Agreement{}, step, err
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
				return Agreement{}, step, err
			}
			recal := cand.Clone()
			if n, err := RecalibrateBN(recal, calib.Head(512), 128, opt.Threads); err != nil {
				return Agreement{}, step, err
			} else if n > 0 {
				rag, err := check(recal)
				if err != nil {
					return Agreement{}, step, err
				}
				if better(rag, ag) {
					ag, cand = rag, recal
				}
			}
			if better(ag, best) {
				best, bestModel = ag, cand
			}
		}
	}
	*student.Graph = *bestModel.Graph
	return best, step, nil
}

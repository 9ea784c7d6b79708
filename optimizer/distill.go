package optimizer

import (
	"fmt"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// Stage records what one distillation stage did and how the student then agreed with the teacher
// on the held-back images.
type Stage struct {
	Name      string    `json:"name"` // inherit, bn-recalibration, bias-correction, refit, fine-tune
	Layers    int       `json:"layers,omitempty"`
	Seconds   float64   `json:"seconds"`
	Agreement Agreement `json:"agreement"`
	Kept      bool      `json:"kept"` // false when the stage made the held-back agreement worse and was undone
}

// DistillOptions configures the repair of a slim model.
type DistillOptions struct {
	Batch, Threads int
	Seed           uint64
	NoRefit        bool
	// Epochs of knowledge-distillation fine-tuning over the calibration images (0: none).
	Epochs   float64
	LR       float64
	MaxTime  time.Duration // cap on the fine-tuning time (0: none)
	Progress func(stage string, done, total int)
}

// DistillReport is the record of a distillation.
type DistillReport struct {
	Mode     string   `json:"mode"` // "data" (user data) or "none"
	Samples  int      `json:"samples"`
	Epochs   float64  `json:"epochs,omitempty"`
	HeldBack int      `json:"held_back"`
	Stages   []Stage  `json:"stages"`
	Seconds  float64  `json:"seconds"`
	Teacher  *float64 `json:"teacher_accuracy,omitempty"`
}

// evalStudent measures a student against cached teacher logits on the held-back images.
func evalStudent(m *onnx.Model, val *dataset.Set, teacher []float32, classes int, opt DistillOptions) (Agreement, error) {
	p, err := engine.Compile(m, engine.Options{Threads: opt.Threads})
	if err != nil {
		return Agreement{}, err
	}
	defer p.Close()
	logits, c, err := Logits(p, val, opt.Batch)
	if err != nil {
		return Agreement{}, err
	}
	if c != classes {
		return Agreement{}, fmt.Errorf("student gives %d classes, teacher %d", c, classes)
	}
	return Compare(teacher, logits, classes, val.Labels), nil
}

// better reports whether agreement a is at least as good as b (top-1 first, then KL).
func better(a, b Agreement) bool {
	if a.Top1 != b.Top1 {
		return a.Top1 > b.Top1
	}
	return a.KL <= b.KL
}

// Distill repairs a slim student sliced from teacher: BN recalibration (BN kept) or bias correction
// (BN folded), then the layer-wise least-squares refit. Each stage is measured on the held-back
// images and undone if it made the agreement worse. The student model is updated in place.
func Distill(teacher, student *onnx.Model, corr map[string]rewrite.Correspondence, calib, val *dataset.Set, opt DistillOptions) (*DistillReport, error) {
	if opt.Batch <= 0 {
		opt.Batch = 64
	}
	start := time.Now()
	rep := &DistillReport{Mode: "data", Samples: calib.N, HeldBack: val.N}
	tp, err := engine.Compile(teacher, engine.Options{Threads: opt.Threads})
	if err != nil {
		return nil, err
	}
	tlog, classes, err := Logits(tp, val, opt.Batch)
	tp.Close()
	if err != nil {
		return nil, err
	}
	self := Compare(tlog, tlog, classes, val.Labels)
	rep.Teacher = self.Accuracy
	cur, err := evalStudent(student, val, tlog, classes, opt)
	if err != nil {
		return nil, err
	}
	rep.Stages = append(rep.Stages, Stage{Name: "inherit", Agreement: cur, Kept: true})

	run := func(name string, f func(m *onnx.Model) (int, error)) error {
		t0 := time.Now()
		trial := student.Clone()
		layers, err := f(trial)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if layers == 0 {
			return nil
		}
		ag, err := evalStudent(trial, val, tlog, classes, opt)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		st := Stage{Name: name, Layers: layers, Agreement: ag, Seconds: time.Since(t0).Seconds()}
		if better(ag, cur) {
			*student.Graph = *trial.Graph
			cur, st.Kept = ag, true
		}
		rep.Stages = append(rep.Stages, st)
		return nil
	}
	hasBN := false
	for _, n := range student.Graph.Nodes {
		if n.OpType == "BatchNormalization" {
			hasBN = true
		}
	}
	if hasBN {
		err = run("bn-recalibration", func(m *onnx.Model) (int, error) { return RecalibrateBN(m, calib, opt.Batch, opt.Threads) })
	} else {
		err = run("bias-correction", func(m *onnx.Model) (int, error) {
			return CorrectBias(teacher, m, corr, calib, opt.Batch, opt.Threads)
		})
	}
	if err != nil {
		return nil, err
	}
	if !opt.NoRefit {
		err = run("refit", func(m *onnx.Model) (int, error) {
			n, err := Refit(teacher, m, corr, calib, RefitOptions{Batch: opt.Batch, Threads: opt.Threads, Seed: opt.Seed,
				Progress: func(d, t int) {
					if opt.Progress != nil {
						opt.Progress("refit", d, t)
					}
				}})
			if err != nil || n == 0 || !hasBN {
				return n, err
			}
			// Refit layers feed BNs whose statistics change with them.
			_, err = RecalibrateBN(m, calib, opt.Batch, opt.Threads)
			return n, err
		})
		if err != nil {
			return nil, err
		}
	}
	if opt.Epochs > 0 {
		t0 := time.Now()
		ag, steps, err := FineTune(teacher, student, calib, val, tlog, classes, FineTuneOptions{Epochs: opt.Epochs, Batch: opt.Batch,
			LR: opt.LR, Threads: opt.Threads, Seed: opt.Seed, MaxTime: opt.MaxTime, LabelWeight: 0.5,
			Progress: func(s, total int, loss float64) {
				if opt.Progress != nil {
					opt.Progress("fine-tune", s, total)
				}
			}})
		if err != nil {
			return nil, fmt.Errorf("fine-tune: %w", err)
		}
		rep.Stages = append(rep.Stages, Stage{Name: "fine-tune", Layers: steps, Agreement: ag, Seconds: time.Since(t0).Seconds(),
			Kept: better(ag, cur) && ag != cur})
		rep.Epochs = opt.Epochs
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

package optimizer

import (
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// DataFitness judges a candidate on calibration images: the slim model is sliced, repaired cheaply
// as the final model will be (a small least-squares refit, then BN recalibration where BN is kept)
// on one half of the images, and scored by minus the mean KL(teacher ‖ student) of its outputs on
// the other half. Scoring on the images the refit saw would favour candidates whose refit merely
// memorises them.
type DataFitness struct {
	a             *rewrite.Analysis
	imp           map[rewrite.GroupID][]float64
	repair, score *dataset.Set
	logits        []float32 // the teacher's, on score
	classes       int
	hasBN         bool
	batch         int
	threads       int
}

// NewDataFitness splits the images into a repair half and a scoring half and computes the
// teacher's logits on the scoring half once.
func NewDataFitness(a *rewrite.Analysis, set *dataset.Set, batch, threads int) (*DataFitness, error) {
	f := &DataFitness{a: a, imp: L1Importance(a), repair: set, score: set, hasBN: HasBatchNorm(a.Model), batch: batch, threads: threads}
	if set.N >= 2 {
		f.repair, f.score = set.Split(0.5, 3)
	}
	p, err := engine.Compile(a.Model, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	f.logits, f.classes, err = Logits(p, f.score, batch)
	p.Close()
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Student slices and cheaply repairs the candidate: the refit ranks candidates by what they can
// recover, not by how broken they are before repair. As in Distill, the refit comes before the BN
// recalibration, while the inherited statistics still match the refit layers' outputs.
func (f *DataFitness) Student(w Widths) (*onnx.Model, rewrite.Keep, error) {
	keep := KeepWidths(f.a, f.imp, w)
	m, err := f.a.Slice(keep)
	if err != nil {
		return nil, nil, err
	}
	corr, err := f.a.Correspond(keep)
	if err != nil {
		return nil, nil, err
	}
	if _, err = Refit(f.a.Model, m, corr, f.repair, RefitOptions{Images: f.repair.N, Rows: 3, Batch: f.batch, Threads: f.threads}); err != nil {
		return nil, nil, err
	}
	if f.hasBN {
		if _, err = RecalibrateBN(m, f.repair, f.batch, f.threads); err != nil {
			return nil, nil, err
		}
	}
	return m, keep, nil
}

// Score is the annealer's fitness: −KL(teacher ‖ repaired student).
func (f *DataFitness) Score(w Widths) (float64, error) {
	m, _, err := f.Student(w)
	if err != nil {
		return 0, err
	}
	p, err := engine.Compile(m, engine.Options{Threads: f.threads})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	logits, _, err := Logits(p, f.score, f.batch)
	if err != nil {
		return 0, err
	}
	return -Compare(f.logits, logits, f.classes, nil).KL, nil
}

package optimizer

import (
	"fmt"

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
	// The finalists' judge: images neither half above holds, and the teacher's logits on the
	// scoring part.
	confirmRepair, confirmScore *dataset.Set
	confirmLogits               []float32
}

// NewDataFitness splits the search images into a repair half and a scoring half and computes the
// teacher's logits on the scoring half once. The confirmation images (nil: none) judge the
// search's finalists in Confirm.
func NewDataFitness(a *rewrite.Analysis, set, confirm *dataset.Set, batch, threads int) (*DataFitness, error) {
	f := &DataFitness{a: a, imp: L1Importance(a), repair: set, score: set, hasBN: HasBatchNorm(a.Model), batch: batch, threads: threads}
	if set.N >= 2 {
		f.repair, f.score = set.Split(0.5, 3)
	}
	if confirm != nil && confirm.N >= 3 {
		// A third to repair (the refit's rows are pixels, so a few hundred images determine
		// it), two thirds to score: the scores must separate students half a point apart.
		f.confirmScore, f.confirmRepair = confirm.Split(1.0/3, 5)
	}
	p, err := engine.Compile(a.Model, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if f.logits, f.classes, err = Logits(p, f.score, batch); err != nil {
		return nil, err
	}
	if f.confirmScore != nil {
		if f.confirmLogits, _, err = Logits(p, f.confirmScore, batch); err != nil {
			return nil, err
		}
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

// Confirm re-judges one of the search's finalists with the repair the final model gets (Distill's
// statistics repair and full least-squares refit) on images the search never scored, and returns
// its −KL(teacher ‖ student). The search picks its best of many noisy scores, so the top scores
// are biased upwards (the winner's curse); fresh images and the real repair undo that.
func (f *DataFitness) Confirm(w Widths) (float64, error) {
	if f.confirmRepair == nil {
		return 0, fmt.Errorf("no confirmation images")
	}
	keep := KeepWidths(f.a, f.imp, w)
	m, err := f.a.Slice(keep)
	if err != nil {
		return 0, err
	}
	corr, err := f.a.Correspond(keep)
	if err != nil {
		return 0, err
	}
	rep, err := distillAgainst(f.a.Model, m, corr, f.confirmRepair, f.confirmScore, f.confirmLogits, f.classes,
		DistillOptions{Batch: f.batch, Threads: f.threads})
	if err != nil {
		return 0, err
	}
	return -rep.Final().KL, nil
}

// FitnessImages divides calibration images between the search (the first 256, scored cheaply
// many times) and the judging of its finalists (up to 1,536 others: each finalist is repaired
// once, on a third of them as Distill would, and scored on the rest, where a thousand images
// tell apart students whose agreement differs by half a point). With too few images left, the
// finalists are judged on the first 1,536.
func FitnessImages(calib *dataset.Set) (search, confirm *dataset.Set) {
	const searchN, confirmN = 256, 1536
	search = calib.Head(searchN)
	if confirm = calib.Range(searchN, searchN+confirmN); confirm.N < 128 {
		confirm = calib.Head(confirmN)
	}
	return search, confirm
}

// UseData makes the search judge candidates on calibration images: DataFitness.Score as its
// fitness, DataFitness.Confirm for the finalists, on the images FitnessImages assigns. It returns
// a description of the fitness for reports.
func (opt *SearchOptions) UseData(a *rewrite.Analysis, calib *dataset.Set, batch, threads int) (string, error) {
	search, confirm := FitnessImages(calib)
	df, err := NewDataFitness(a, search, confirm, batch, threads)
	if err != nil {
		return "", err
	}
	opt.Fitness = df.Score
	desc := fmt.Sprintf("teacher KL on %d calibration images after a small least-squares refit on %d others", df.score.N, df.repair.N)
	if df.confirmRepair == nil {
		return desc, nil
	}
	opt.Confirm = df.Confirm
	return desc + fmt.Sprintf("; finalists judged after the full repair on %d others, scored on %d more", df.confirmRepair.N, df.confirmScore.N), nil
}

package optimizer

import (
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/internal/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// DataFitness judges a candidate on calibration images: the slim model is sliced, repaired cheaply
// (BN recalibration when it keeps BN, bias correction when BN was folded), and scored by minus the
// mean KL(teacher ‖ student) of its outputs on the images.
type DataFitness struct {
	a       *rewrite.Analysis
	imp     map[rewrite.GroupID][]float64
	set     *dataset.Set
	logits  []float32
	classes int
	hasBN   bool
	moments map[string]*channelMoments
	batch   int
	threads int
}

// NewDataFitness prepares the teacher's logits (and conv output statistics) on the images once.
func NewDataFitness(a *rewrite.Analysis, set *dataset.Set, batch, threads int) (*DataFitness, error) {
	f := &DataFitness{a: a, imp: L1Importance(a), set: set, batch: batch, threads: threads}
	for _, n := range a.Model.Graph.Nodes {
		if n.OpType == "BatchNormalization" {
			f.hasBN = true
		}
	}
	p, err := engine.Compile(a.Model, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	f.logits, f.classes, err = Logits(p, set, batch)
	p.Close()
	if err != nil {
		return nil, err
	}
	if !f.hasBN {
		if f.moments, err = TeacherMoments(a.Model, set, batch, threads); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Student slices and cheaply repairs the candidate.
func (f *DataFitness) Student(w Widths) (*onnx.Model, rewrite.Keep, error) {
	keep := KeepWidths(f.a, f.imp, w)
	m, err := f.a.Slice(keep)
	if err != nil {
		return nil, nil, err
	}
	if f.hasBN {
		if _, err = RecalibrateBN(m, f.set, f.batch, f.threads); err != nil {
			return nil, nil, err
		}
	}
	// A small least-squares refit: the repair the final model gets, on fewer images, so the search
	// ranks candidates by what they can recover, not by how broken they are before repair.
	corr, err := f.a.Correspond(keep)
	if err != nil {
		return nil, nil, err
	}
	_, err = Refit(f.a.Model, m, corr, f.set, RefitOptions{Images: f.set.N, Rows: 3, Batch: f.batch, Threads: f.threads})
	return m, keep, err
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
	logits, _, err := Logits(p, f.set, f.batch)
	if err != nil {
		return 0, err
	}
	return -Compare(f.logits, logits, f.classes, nil).KL, nil
}

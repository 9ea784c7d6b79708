package optimizer

import (
	"fmt"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// DataFitness judges a candidate on calibration images: the slim model is sliced, repaired cheaply
// as the final model will be (a small least-squares refit, then BN recalibration where it helps)
// on a few images, and scored by minus the divergence of its outputs from the teacher's on many
// others (KL for classifiers; the loss that fits each output's kind otherwise, see CompareOutputs). Scoring on the images the refit saw would favour candidates whose refit merely memorises
// them.
type DataFitness struct {
	a             *rewrite.Analysis
	imp           map[rewrite.GroupID][]float64
	repair, score *dataset.Set
	teacher       *Outputs // the teacher's, on score
	hasBN         bool
	batch         int
	threads       int
	// The finalists' judge: images neither half above holds, and the teacher's outputs on the
	// scoring part.
	confirmRepair, confirmScore *dataset.Set
	confirmTeacher              *Outputs
	kinds                       map[string]OutputKind // overrides of the outputs' kinds
}

// FitnessSets are the calibration images a data-driven search uses: the cheap fitness repairs on
// Repair and scores on Score; the finalists' judge repairs on ConfirmRepair and scores on
// ConfirmScore (nil: no judging). The four are disjoint.
type FitnessSets struct {
	Repair, Score, ConfirmRepair, ConfirmScore *dataset.Set
}

// NewDataFitness computes the teacher's outputs on the scoring sets once. kinds names the kinds
// of outputs outright (nil: as ClassifyOutput decides).
func NewDataFitness(a *rewrite.Analysis, sets FitnessSets, batch, threads int, kinds map[string]OutputKind) (*DataFitness, error) {
	f := &DataFitness{a: a, imp: L1Importance(a), repair: sets.Repair, score: sets.Score, hasBN: HasBatchNorm(a.Model),
		batch: inferBatch(a.Model, batch), threads: threads, kinds: kinds}
	if sets.ConfirmRepair != nil && sets.ConfirmScore != nil {
		f.confirmRepair, f.confirmScore = sets.ConfirmRepair, sets.ConfirmScore
	}
	p, err := engine.Compile(a.Model, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if f.score != nil {
		if f.teacher, err = RunOutputs(p, a.Model, f.score, f.batch, f.kinds); err != nil {
			return nil, err
		}
		if err := f.teacher.CheckLabels(f.score); err != nil {
			return nil, err
		}
	}
	if f.confirmScore != nil {
		if f.confirmTeacher, err = RunOutputs(p, a.Model, f.confirmScore, f.batch, f.kinds); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Student slices the candidate and refits it cheaply: the refit ranks candidates by what they can
// recover, not by how broken they are before repair.
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
	return m, keep, nil
}

// kl is the divergence of m's outputs from the teacher's on the scoring images: the mean
// KL(teacher ‖ m) for a classifier.
func (f *DataFitness) kl(m *onnx.Model) (float64, error) {
	p, err := engine.Compile(m, engine.Options{Threads: f.threads})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	out, err := runOutputs(p, f.score, f.batch)
	if err != nil {
		return 0, err
	}
	ag, err := CompareOutputs(f.teacher, out, nil)
	return ag.KL, err
}

// Score is the annealer's fitness: −KL(teacher ‖ repaired student). Where BN is kept, the refit
// student is also scored after BN recalibration and the better of the two counts, as Distill
// keeps the recalibration only where it helps (on resnet8_bn it mostly does not; scoring every
// candidate after it ranked them by a step the final model skips).
func (f *DataFitness) Score(w Widths) (float64, error) {
	m, _, err := f.Student(w)
	if err != nil {
		return 0, err
	}
	kl, err := f.kl(m)
	if err != nil {
		return 0, err
	}
	if f.hasBN {
		// As in Distill, the refit comes before the recalibration, while the inherited
		// statistics still match the refit layers' outputs.
		if _, err = RecalibrateBN(m, f.repair, f.batch, f.threads); err != nil {
			return 0, err
		}
		recal, err := f.kl(m)
		if err != nil {
			return 0, err
		}
		kl = min(kl, recal)
	}
	return -kl, nil
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
	rep, err := distillAgainst(f.a.Model, m, corr, f.confirmRepair, f.confirmScore, f.confirmTeacher,
		DistillOptions{Batch: f.batch, Threads: f.threads, OutputKinds: f.kinds})
	if err != nil {
		return 0, err
	}
	return -rep.Final().KL, nil
}

// FitnessImages divides calibration images between the search and the judging of its finalists.
// Scoring is cheap (a forward pass) and repairing is not (a least-squares refit per cut layer), so
// the scoring sets are the large ones: the cheap fitness repairs on 128 images and scores on up to
// 1,024 others; the finalists are repaired on up to 512 more, as Distill would, and scored on up
// to 2,048 more. Students whose agreement differs by half a point disagree on a few percent of
// images, so on a few hundred images the noise would be as large as the difference; a few thousand
// tell them apart. With fewer than 3,712 images the last three sets share what there is; with
// fewer than 512 the search judges no finalists; with fewer than 256 the cheap fitness repairs on
// one half and scores on the other.
func FitnessImages(calib *dataset.Set) FitnessSets {
	const repairN, scoreN, confirmRepairN, confirmScoreN = 128, 1024, 512, 2048
	if calib.N < 2 {
		return FitnessSets{Repair: calib, Score: calib}
	}
	// Never score on the images the refit saw: a small set is halved.
	at := min(repairN, calib.N/2)
	sets := FitnessSets{Repair: calib.Head(at)}
	if calib.N < 512 {
		sets.Score = calib.Range(at, calib.N)
		return sets
	}
	rest := calib.N - at
	score := min(scoreN, rest/3)
	cr := min(confirmRepairN, rest/3)
	cs := min(confirmScoreN, rest-score-cr)
	sets.Score = calib.Range(at, at+score)
	at += score
	sets.ConfirmRepair = calib.Range(at, at+cr)
	at += cr
	sets.ConfirmScore = calib.Range(at, at+cs)
	return sets
}

// searchEvaluations is how many cheap fitness evaluations a data search wants in the first half of
// its time (the temperature probes take a dozen), and searchFinalists how many finalists the
// second half should judge.
const searchEvaluations, searchFinalists = 40, 3

// UseData makes the search judge candidates on calibration images: DataFitness.Score as its
// fitness, DataFitness.Confirm for the finalists, on the images FitnessImages assigns. It returns
// a description of the fitness for reports.
//
// Under a TimeLimit the image counts are fitted to the model's measured speed: a 224×224 network
// costs a thousand times a 28×28 one per image, and a search that manages three evaluations
// searches nothing. When even the smallest useful sets would not allow searchEvaluations, the
// cheap fitness becomes the channel-contribution score on moments measured from the images (one
// pass), and the data judge only the finalists.
func (opt *SearchOptions) UseData(a *rewrite.Analysis, calib *dataset.Set, batch, threads int) (string, error) {
	sets := FitnessImages(calib)
	useMoments := false
	if opt.TimeLimit > 0 {
		perImage, err := forwardCost(a.Model, calib)
		if err != nil {
			return "", err
		}
		useMoments = fitSets(&sets, a.Model, perImage, opt.TimeLimit)
	}
	if useMoments {
		mom, err := MeasureMoments(a.Model, sets.Repair, batch, threads)
		if err != nil {
			return "", err
		}
		opt.Fitness = ContributionFitness(a, mom, MomentOptions{})
		opt.Importance = ContributionImportance(a, mom, MomentOptions{})
		if opt.Iterations == 0 {
			opt.Iterations = 4000 // as cheap as the data-free score
		}
		desc := fmt.Sprintf("consumer variance lost after mean compensation, moments measured on %d calibration images (a data refit per candidate would not fit the search time)", sets.Repair.N)
		sets.Repair, sets.Score = nil, nil
		if sets.ConfirmRepair == nil {
			return desc, nil
		}
		df, err := NewDataFitness(a, sets, batch, threads, opt.OutputKinds)
		if err != nil {
			return "", err
		}
		df.imp = opt.Importance
		opt.Confirm = df.Confirm
		return desc + fmt.Sprintf("; finalists judged after the full repair on %d others, scored on %d more", df.confirmRepair.N, df.confirmScore.N), nil
	}
	df, err := NewDataFitness(a, sets, batch, threads, opt.OutputKinds)
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

// engineMACRate is the engine's forward speed the plans assume, in multiply-accumulates per second
// (about what it reaches on two cores of these machines on 224×224 nets). Plans use this constant
// rather than a timing so that the same inputs and seed give the same images, hence the same bytes,
// on any machine; only the time limits themselves depend on the machine's speed.
const engineMACRate = 40e9

// forwardCost is the planned forward time of m per image of set.
func forwardCost(m *onnx.Model, set *dataset.Set) (time.Duration, error) {
	if len(m.Graph.Inputs) != 1 {
		return 0, fmt.Errorf("the model has %d inputs; chanopt feeds data to models with one", len(m.Graph.Inputs))
	}
	c, err := Measure(m, map[string]onnx.Shape{m.Graph.Inputs[0]: onnx.ShapeOf(1, int64(set.C), int64(set.H), int64(set.W))})
	if err != nil {
		return 0, err
	}
	return time.Duration(float64(c.MACs) / engineMACRate * float64(time.Second)), nil
}

// fitSets shrinks the fitness sets until searchEvaluations cheap evaluations fit the first half of
// limit and searchFinalists judgements the second, at perImage seconds per image forward. A refit
// costs about 1 + layers/2 forwards per image (the teacher once, the student cut at each layer)
// and a BN recalibration one per BN layer. It reports whether the cheap fitness must give up the
// data (the sets at their floors still too slow).
func fitSets(sets *FitnessSets, m *onnx.Model, perImage, limit time.Duration) (useMoments bool) {
	layers, bns := 0, 0
	for _, n := range m.Graph.Nodes {
		switch n.OpType {
		case "Conv", "Gemm", "MatMul":
			layers++
		case "BatchNormalization":
			bns++
		}
	}
	repairPasses := 1 + float64(layers)/2 + float64(bns)
	scorePasses := 1.0
	if bns > 0 {
		scorePasses = 2 // scored with and without recalibration
	}
	cost := func(repair, score *dataset.Set) time.Duration {
		if repair == nil || score == nil {
			return 0
		}
		return time.Duration((float64(repair.N)*repairPasses + float64(score.N)*scorePasses) * float64(perImage))
	}
	// shrink scales both sets by the same factor, down to their floors.
	shrink := func(repair, score **dataset.Set, budget time.Duration, repairFloor, scoreFloor int) bool {
		c := cost(*repair, *score)
		if c <= budget || c == 0 {
			return true
		}
		f := float64(budget) / float64(c)
		*repair = (*repair).Head(min((*repair).N, max(repairFloor, int(f*float64((*repair).N)))))
		*score = (*score).Head(min((*score).N, max(scoreFloor, int(f*float64((*score).N)))))
		return cost(*repair, *score) <= budget
	}
	ok := shrink(&sets.Repair, &sets.Score, limit/2/searchEvaluations, 32, 128)
	if sets.ConfirmRepair != nil && !shrink(&sets.ConfirmRepair, &sets.ConfirmScore, limit/2/searchFinalists, 64, 256) {
		sets.ConfirmRepair, sets.ConfirmScore = nil, nil
	}
	return !ok
}

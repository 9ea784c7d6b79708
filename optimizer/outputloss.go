package optimizer

import (
	"fmt"
	"math"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
)

// Outputs are a model's outputs on a data set: for each graph output, its kind and its values
// for every image (N × Per[i] elements, flattened).
type Outputs struct {
	Kinds []Output
	Data  [][]float32
	Dims  [][]int // per-image shape of each output (the batch dim left out)
	N     int
	// scale[i] divides output i's MSE (the original's variance), so that a map's loss does not
	// depend on the units of its values; 1 where the loss is scale-free.
	scale []float64
}

// CheckLabels refuses a label file (IDX, .npy) for a model with no classifier output. Labels
// that class folders give (set.Classes named) are not refused: they are the folders' names, not a
// claim about the model, and no figure uses them.
func (o *Outputs) CheckLabels(set *dataset.Set) error {
	if set.Labels != nil && set.Classes == nil && o.Classifier() < 0 {
		return fmt.Errorf("labels were given but the model's outputs are %s: labels apply only to classifiers", o.Describe())
	}
	return nil
}

// mseScale is what output i's MSE is divided by: its variance as RunOutputs measured it, 1 for
// outputs assembled by hand.
func (o *Outputs) mseScale(i int) float64 {
	if i < len(o.scale) {
		return o.scale[i]
	}
	return 1
}

// Per is the number of elements of output i per image.
func (o *Outputs) Per(i int) int { return len(o.Data[i]) / max(o.N, 1) }

// Classifier is the index of the first classifier output, or −1.
func (o *Outputs) Classifier() int {
	for i, k := range o.Kinds {
		if k.Classifier() {
			return i
		}
	}
	return -1
}

// Describe lists the outputs and their kinds for messages: "mask (map, Sigmoid)".
func (o *Outputs) Describe() string {
	s := ""
	for i, k := range o.Kinds {
		if i > 0 {
			s += ", "
		}
		s += k.Name + " (" + string(k.Kind)
		if k.Activation != "" {
			s += ", " + k.Activation
		}
		s += ")"
	}
	return s
}

// RunOutputs runs m's program p over set in batches and keeps every output, classified by m's
// graph (override names kinds outright).
func RunOutputs(p *engine.Program, m *onnx.Model, set *dataset.Set, batch int, override map[string]OutputKind) (*Outputs, error) {
	res, err := runOutputs(p, set, batch)
	if err != nil {
		return nil, err
	}
	ranks, float := map[string]int{}, map[string]bool{}
	for i, name := range p.Outputs() {
		ranks[name] = len(res.Dims[i]) + 1
		float[name] = res.Data[i] != nil
	}
	if res.Kinds, err = ClassifyOutputs(m, ranks, float, override); err != nil {
		return nil, err
	}
	res.scale = make([]float64, len(res.Kinds))
	for i, k := range res.Kinds {
		res.scale[i] = 1
		if k.Kind == KindMap && k.Activation != "Sigmoid" {
			res.scale[i] = max(variance(res.Data[i]), 1e-12)
		}
	}
	return res, nil
}

// runOutputs runs p over set and gathers its outputs (integer outputs are left nil).
func runOutputs(p *engine.Program, set *dataset.Set, batch int) (*Outputs, error) {
	names := p.Outputs()
	res := &Outputs{Data: make([][]float32, len(names)), Dims: make([][]int, len(names)), N: set.N}
	first := true
	err := runBatches(p, set, batch, func(n int, ys []*engine.Tensor) error {
		for j, y := range ys {
			if len(y.Shape) < 1 || y.Shape[0] != n {
				return fmt.Errorf("the model's output %s has shape %v for %d images: its first dim is not the batch", names[j], y.Shape, n)
			}
			if first {
				res.Dims[j] = append([]int(nil), y.Shape[1:]...)
			}
			if y.IsInt() {
				continue
			}
			res.Data[j] = append(res.Data[j], y.Data...)
		}
		first = false
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func variance(v []float32) float64 {
	if len(v) == 0 {
		return 0
	}
	var s, ss float64
	for _, x := range v {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	m := s / float64(len(v))
	return ss/float64(len(v)) - m*m
}

// outputLoss is the distillation loss of one output, student against teacher (both shaped as
// the output, batch first), writing its gradient with respect to the student into grad. Logits
// are softened at temperature; the other kinds have no temperature. scale divides the MSE of maps
// without a Sigmoid.
func outputLoss(grad, student, teacher *engine.Tensor, o Output, temperature, scale float64) float64 {
	switch o.Kind {
	case KindLogits:
		return engine.KLDivInto(grad, student, teacher, temperature)
	case KindProbabilities:
		switch o.Activation {
		case "Sigmoid":
			return engine.BernoulliKLInto(grad, student, teacher)
		case "LogSoftmax":
			return engine.KLDivProbsInto(grad, student, teacher, true)
		}
		return engine.KLDivProbsInto(grad, student, teacher, false)
	case KindEmbedding:
		return engine.CosineDistanceInto(grad, student, teacher)
	case KindMap:
		if o.Activation == "Sigmoid" {
			return engine.BernoulliKLInto(grad, student, teacher)
		}
		l := engine.MSEInto(grad, student, teacher)
		for i := range grad.Data {
			grad.Data[i] = float32(float64(grad.Data[i]) / scale)
		}
		return l / scale
	}
	grad.Shape, grad.Data = append(grad.Shape[:0], student.Shape...), grad.Data[:0]
	for range student.Len() {
		grad.Data = append(grad.Data, 0)
	}
	return 0
}

// OutputAgreement is how one output of a student agrees with the original's, with the figures
// that fit its kind.
type OutputAgreement struct {
	Name string     `json:"name"`
	Kind OutputKind `json:"kind"`
	// Top1 is the share of images where both pick the same class (classifiers).
	Top1 *float64 `json:"top1_agreement,omitempty"`
	// Estimated is the accuracy drop estimated from the original's probabilities (classifiers;
	// see EstimateAccuracy): what the accuracy-first search judges when there are no labels.
	Estimated *AccuracyEstimate `json:"estimated_accuracy,omitempty"`
	// IoU is the intersection over union of the two maps thresholded (at 0.5 for probabilities,
	// 0 for raw values), pooled over the images' elements; MAE their mean absolute difference.
	IoU *float64 `json:"iou,omitempty"`
	MAE *float64 `json:"mae,omitempty"`
	// Cosine is the mean cosine similarity of the two embeddings.
	Cosine *float64 `json:"cosine,omitempty"`
	// Divergence is the distillation loss at temperature 1 (KL for classifiers).
	Divergence float64 `json:"divergence"`
}

// Figure is the output's main agreement figure, 1 at perfect agreement: top-1, IoU or cosine.
func (a OutputAgreement) Figure() float64 {
	switch {
	case a.Top1 != nil:
		return *a.Top1
	case a.IoU != nil:
		return *a.IoU
	case a.Cosine != nil:
		return *a.Cosine
	}
	return 1
}

// CompareOutputs measures a student's outputs against its teacher's on the same images (labels
// give the accuracy of the first classifier output). KL is the sum of the outputs' divergences,
// Top1 the mean top-1 agreement of the classifier outputs.
func CompareOutputs(teacher, student *Outputs, labels []int) (Agreement, error) {
	if len(teacher.Data) != len(student.Data) || teacher.N != student.N {
		return Agreement{}, fmt.Errorf("the student has %d outputs on %d images, the teacher %d on %d", len(student.Data), student.N, len(teacher.Data), teacher.N)
	}
	a := Agreement{Images: teacher.N}
	classifiers := 0
	grad := &engine.Tensor{}
	for i, k := range teacher.Kinds {
		if k.Kind == KindOther {
			continue
		}
		t, s := teacher.Data[i], student.Data[i]
		if len(t) != len(s) {
			return Agreement{}, fmt.Errorf("output %s: the student gives %v per image, the teacher %v", k.Name, student.Dims[i], teacher.Dims[i])
		}
		oa := OutputAgreement{Name: k.Name, Kind: k.Kind}
		per := teacher.Per(i)
		shape := append([]int{teacher.N}, teacher.Dims[i]...)
		if k.Kind == KindLogits || k.Kind == KindProbabilities || k.Kind == KindEmbedding {
			shape = []int{teacher.N, per} // one row per image
		}
		oa.Divergence = outputLoss(grad, engine.NewTensor(shape, s), engine.NewTensor(shape, t), k, 1, teacher.mseScale(i))
		a.KL += oa.Divergence
		switch k.Kind {
		case KindLogits, KindProbabilities:
			c := Compare(t, s, per, nil) // the arg max is the same for logits and probabilities
			oa.Top1 = &c.Top1
			a.Top1 += c.Top1
			act := k.Activation
			if k.Kind == KindLogits {
				act = "" // named logits outright: softmaxed whatever made them
			}
			est := EstimateAccuracy(t, s, per, act)
			oa.Estimated = &est
			if classifiers == 0 && labels != nil {
				la := Compare(t, s, per, labels)
				a.Accuracy, a.Teacher = la.Accuracy, la.Teacher
			}
			classifiers++
		case KindMap:
			th := 0.0
			switch k.Activation {
			case "Sigmoid", "Softmax":
				th = 0.5
			case "LogSoftmax":
				th = math.Log(0.5)
			}
			iou, mae := mapFigures(t, s, th)
			oa.IoU, oa.MAE = &iou, &mae
		case KindEmbedding:
			cos := 1 - engine.CosineDistanceInto(grad, engine.NewTensor(shape, s), engine.NewTensor(shape, t))
			oa.Cosine = &cos
		}
		a.Outputs = append(a.Outputs, oa)
	}
	if classifiers > 0 {
		a.Top1 /= float64(classifiers)
	}
	return a, nil
}

// mapFigures is the IoU of t > th and s > th (1 when both are empty) and the mean |t − s|.
func mapFigures(t, s []float32, th float64) (iou, mae float64) {
	var inter, union int
	for i := range t {
		a, b := float64(t[i]) > th, float64(s[i]) > th
		if a && b {
			inter++
		}
		if a || b {
			union++
		}
		mae += math.Abs(float64(t[i]) - float64(s[i]))
	}
	iou = 1
	if union > 0 {
		iou = float64(inter) / float64(union)
	}
	return iou, mae / float64(max(len(t), 1))
}

// DeclaredOutputs classifies m's outputs from shape inference at inputs (nil: batch 1), without
// running the model: what the checks made before any work use (labels for a model with no
// classifier, kinds given for outputs it does not have). Where a shape cannot be inferred the
// output counts as rank 2.
func DeclaredOutputs(m *onnx.Model, inputs map[string]onnx.Shape, override map[string]OutputKind) (*Outputs, error) {
	g := m.Graph
	if inputs == nil {
		inputs, _ = onnx.BatchOne(m.Graph, nil)
	}
	if inputs != nil {
		if tmp, err := onnx.InferredCopy(m, inputs); err == nil {
			g = tmp.Graph
		}
	}
	ranks, float := map[string]int{}, map[string]bool{}
	for _, name := range m.Graph.Outputs {
		ranks[name], float[name] = 2, true
		if v := g.Values[name]; v != nil {
			if v.Shape != nil {
				ranks[name] = len(v.Shape)
			}
			switch v.Type {
			case onnx.Undefined, onnx.Float, onnx.Float16, onnx.Double, onnx.BFloat16:
			default:
				float[name] = false
			}
		}
	}
	kinds, err := ClassifyOutputs(m, ranks, float, override)
	if err != nil {
		return nil, err
	}
	return &Outputs{Kinds: kinds}, nil
}

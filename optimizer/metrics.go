package optimizer

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/onnx"
)

// LayerMetrics holds the CONet low-rank metrics of one weighted layer, for its input side (the
// mode-3 unfolding of the weight: one row per input channel) and its output side (mode 4: one row
// per output channel). On each side, with the K values σ̂ that EVBMF keeps and the unfolding's row
// count C:
//
//	rank = K/C                      the fraction of channels the weight really uses
//	KG   = (Σ σ̂_i/σ̂_1)/C           knowledge gain (0 when K = 0)
//	MC   = σ̂_1/σ̂_K                 mapping condition (0 when K = 0)
//	QC   = atan2(rank, 1 − 1/MC)    their combination, with the denominator 1 when MC = 0
//
// QC is the mean of QCIn and QCOut over the sides that are present. As the formula stands, QC jumps
// from 0 at K = 0 to its largest value π/2 at K = 1 (MC = 1), then falls towards atan(rank) as MC grows.
//
// A side is absent (HasIn or HasOut false, its metrics zero) when its unfolding has a single row:
// then EVBMF has one singular value and cannot tell it from noise. That covers the input side of
// depthwise convs (group = C_in, weight C_out×1×kh×kw), of convs that read one channel (a grey
// image), and the output side of a depthwise ConvTranspose.
//
// Which matrix is which, for each op (k = kh·kw·…, the product of the spatial dims):
//
//	Conv           W: C_out × C_in/g × k   out: C_out × (C_in/g·k)   in: C_in/g × (C_out·k)
//	ConvTranspose  W: C_in × C_out/g × k   out: C_out/g × (C_in·k)   in: C_in × (C_out/g·k)
//	Gemm, MatMul   the 2-D weight          out: N_out × K_in         in: K_in × N_out
//
// (Gemm's B is N_out × K_in when transB = 1 and K_in × N_out otherwise, MatMul's always K_in × N_out;
// a MatMul with a weight of more than 2 dims is not measured.)
//
// A grouped conv (1 < g < C_in) is unfolded as it is stored, so its input side has C_in/g rows, each
// mixing the j-th input channel of every group, and C is C_in/g there (InChannels stays C_in). For
// a 2-D weight both sides are one matrix and its transpose: they share K and σ̂ and differ only by C.
type LayerMetrics struct {
	Name string // the node's name, or its first output when unnamed
	Op   string // Conv, ConvTranspose, Gemm or MatMul

	InChannels, OutChannels int
	HasIn, HasOut           bool
	KIn, KOut               int // the EVBMF ranks K of each side
	// SingularOut holds the raw singular values of the output-side unfolding, descending (for the
	// search's retention curves); nil when that side is absent.
	SingularOut []float64 `json:"-"`
	// ReachIn and ReachOut are the largest rank each side's unfolding allows, min(1, columns/rows):
	// below 1 where the matrix is wider in channels than in what each channel mixes (a depthwise
	// conv's output side, C × k; a Gemm's input side after a Flatten, C·h·w × N_out), so that
	// side's rank says little about the channels.
	ReachIn, ReachOut float64 `json:"-"`

	RankIn, RankOut float64
	KGIn, KGOut     float64
	MCIn, MCOut     float64
	QCIn, QCOut     float64
	QC              float64
}

// LayerMetricsOf computes the metrics of every Conv, ConvTranspose, Gemm and MatMul of the main graph
// whose weight (input 1, 2-D for Gemm and MatMul) is an initializer, in graph order. The layers are
// spread over GOMAXPROCS goroutines.
func LayerMetricsOf(m *onnx.Model) ([]LayerMetrics, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("layer metrics: no graph")
	}
	var layers []*layerJob
	for _, n := range m.Graph.Nodes {
		lj, err := newLayerJob(m.Graph, n)
		if err != nil {
			return nil, fmt.Errorf("layer metrics of %s %s: %w", n.OpType, n.Label(), err)
		}
		if lj != nil {
			layers = append(layers, lj)
		}
	}
	if err := runLayerJobs(layers); err != nil {
		return nil, err
	}
	out := make([]LayerMetrics, len(layers))
	for i, lj := range layers {
		out[i] = lj.metrics
	}
	return out, nil
}

// WeightMetrics computes the metrics of a weight laid out as a Conv's (C_out × C_in/group × k…) or,
// when 2-D, as a Linear's (N_out × K_in), without a model. Name and Op are left empty.
func WeightMetrics(w []float32, dims []int64, group int) (LayerMetrics, error) {
	lj, err := weightJob(w, dims, group, convLayout)
	if err != nil {
		return LayerMetrics{}, err
	}
	if err := runLayerJobs([]*layerJob{lj}); err != nil {
		return LayerMetrics{}, err
	}
	return lj.metrics, nil
}

// layout says which axis of a weight holds the output channels.
type layout int

const (
	convLayout       layout = iota // axis 0 out, axis 1 in (Conv; Gemm with transB = 1)
	transposedLayout               // axis 0 in, axis 1 out (ConvTranspose; MatMul; Gemm with transB = 0)
)

// layerJob is one layer's metrics being computed: one or two unfoldings to run EVBMF on.
type layerJob struct {
	metrics LayerMetrics
	sides   []*sideJob
}

// sideJob is one unfolding. in and out say which sides of the layer its result describes (both when
// the two unfoldings are transposes of each other), with the row count C each side divides by.
type sideJob struct {
	w          []float32
	dims       []int64
	axis       int // the unfolding's rows come from this axis of w
	rows, cols int
	in, out    bool
	inC, outC  int
	result     EVBMFResult
	err        error
}

func newLayerJob(g *onnx.Graph, n *onnx.Node) (*layerJob, error) {
	t, lay, group, err := layerWeight(g, n)
	if t == nil || err != nil {
		return nil, err
	}
	lj, err := weightJob(t.Floats, t.Dims, group, lay)
	if err != nil {
		return nil, fmt.Errorf("weight %s: %w", t.Name, err)
	}
	lj.metrics.Name, lj.metrics.Op = n.Label(), n.OpType
	return lj, nil
}

// layerWeight finds the weight of a layer LayerMetricsOf measures, with its layout and group count.
// It returns a nil tensor for any other node.
func layerWeight(g *onnx.Graph, n *onnx.Node) (*onnx.Tensor, layout, int, error) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, 0, 0, nil
	}
	var (
		lay     layout
		group   = 1
		minRank = 3
	)
	switch n.OpType {
	case "Conv":
		lay, group = convLayout, int(n.Int("group", 1))
	case "ConvTranspose":
		lay, group = transposedLayout, int(n.Int("group", 1))
	case "Gemm":
		lay, minRank = transposedLayout, 2
		if n.Int("transB", 0) != 0 {
			lay = convLayout
		}
	case "MatMul":
		lay, minRank = transposedLayout, 2
	default:
		return nil, 0, 0, nil
	}
	t, ok := g.Inits[n.Input(1)]
	if !ok || (minRank == 2 && len(t.Dims) != 2) {
		return nil, 0, 0, nil // a weight computed at run time, or a batched MatMul: not a layer we measure
	}
	if !t.Type.IsFloat() {
		return nil, 0, 0, fmt.Errorf("weight %s is %s, not floating point", t.Name, t.Type)
	}
	if len(t.Dims) < minRank {
		return nil, 0, 0, fmt.Errorf("weight %s has shape %v, want at least %d dims", t.Name, t.Dims, minRank)
	}
	if int64(len(t.Floats)) != t.NumElements() {
		return nil, 0, 0, fmt.Errorf("weight %s of shape %v holds %d values", t.Name, t.Dims, len(t.Floats))
	}
	return t, lay, group, nil
}

// LayerUnfolding returns the output-side (out true) or input-side unfolding of node n's weight, the
// matrix whose rows are that side's channels as LayerMetrics defines it (see its table; for a grouped
// conv's input side, C_in/g rows). It returns nil for a node LayerMetricsOf does not measure or
// a weight with no values. With EVBMFWithVectors it gives the kept directions of a layer.
func LayerUnfolding(g *onnx.Graph, n *onnx.Node, out bool) (*mat.Dense, error) {
	t, lay, _, err := layerWeight(g, n)
	if t == nil || err != nil || t.NumElements() == 0 {
		return nil, err
	}
	axis := 1 // the input channels of a conv layout
	if out == (lay == convLayout) {
		axis = 0
	}
	return Unfold(t.Floats, t.Dims, axis), nil
}

// weightJob plans the unfoldings of a weight. For the conv layout axis 0 holds the output channels and
// axis 1 the input channels per group; the transposed layout swaps them.
func weightJob(w []float32, dims []int64, group int, lay layout) (*layerJob, error) {
	if len(dims) < 2 {
		return nil, fmt.Errorf("weight shape %v: want at least 2 dims", dims)
	}
	if group < 1 {
		return nil, fmt.Errorf("group %d: want at least 1", group)
	}
	numel := int64(1)
	for _, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("weight shape %v has a negative dim", dims)
		}
		numel *= d
	}
	if int64(len(w)) != numel {
		return nil, fmt.Errorf("weight shape %v needs %d values, have %d", dims, numel, len(w))
	}
	spatial := int(numel / max(dims[0]*dims[1], 1))
	outAxis, inAxis := 0, 1
	if lay == transposedLayout {
		outAxis, inAxis = 1, 0
	}
	lj := &layerJob{}
	lm := &lj.metrics
	outRows, inRows := int(dims[outAxis]), int(dims[inAxis])
	lm.OutChannels, lm.InChannels = outRows, inRows
	if len(dims) > 2 { // the grouped axis of a conv holds one group's channels
		if outAxis == 1 {
			lm.OutChannels *= group
		} else {
			lm.InChannels *= group
		}
	}
	lm.HasOut, lm.HasIn = outRows > 1 && numel > 0, inRows > 1 && numel > 0
	if numel > 0 {
		lm.ReachOut = min(1, float64(numel)/float64(outRows)/float64(outRows))
		lm.ReachIn = min(1, float64(numel)/float64(inRows)/float64(inRows))
	}
	side := func(axis int, rows int) *sideJob {
		return &sideJob{w: w, dims: dims, axis: axis, rows: rows, cols: int(numel) / rows}
	}
	switch {
	case spatial == 1 && (lm.HasOut || lm.HasIn):
		// A 2-D weight or a 1×1 kernel: the two unfoldings are transposes of each other, and one SVD
		// serves both sides.
		s := side(outAxis, outRows)
		s.out, s.outC, s.in, s.inC = lm.HasOut, outRows, lm.HasIn, inRows
		lj.sides = append(lj.sides, s)
	default:
		if lm.HasOut {
			s := side(outAxis, outRows)
			s.out, s.outC = true, outRows
			lj.sides = append(lj.sides, s)
		}
		if lm.HasIn {
			s := side(inAxis, inRows)
			s.in, s.inC = true, inRows
			lj.sides = append(lj.sides, s)
		}
	}
	return lj, nil
}

// runLayerJobs runs every unfolding's EVBMF on GOMAXPROCS goroutines, the costliest first so the last
// ones to finish are short, then fills in each layer's metrics.
func runLayerJobs(layers []*layerJob) error {
	var sides []*sideJob
	for _, lj := range layers {
		sides = append(sides, lj.sides...)
	}
	cost := func(s *sideJob) float64 {
		l, m := float64(min(s.rows, s.cols)), float64(max(s.rows, s.cols))
		return l * l * m
	}
	sort.SliceStable(sides, func(i, j int) bool { return cost(sides[i]) > cost(sides[j]) })
	work := make(chan *sideJob)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(sides)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				s.result, s.err = EVBMF(Unfold(s.w, s.dims, s.axis))
			}
		}()
	}
	for _, s := range sides {
		work <- s
	}
	close(work)
	wg.Wait()

	for _, lj := range layers {
		lm := &lj.metrics
		for _, s := range lj.sides {
			if s.err != nil {
				return fmt.Errorf("layer metrics of %s %s: %w", lm.Op, lm.Name, s.err)
			}
			if s.out {
				lm.KOut = s.result.Rank
				lm.SingularOut = s.result.Singular
				lm.RankOut, lm.KGOut, lm.MCOut, lm.QCOut = sideMetrics(s.result, s.outC)
			}
			if s.in {
				lm.KIn = s.result.Rank
				lm.RankIn, lm.KGIn, lm.MCIn, lm.QCIn = sideMetrics(s.result, s.inC)
			}
		}
		switch {
		case lm.HasIn && lm.HasOut:
			lm.QC = (lm.QCIn + lm.QCOut) / 2
		case lm.HasIn:
			lm.QC = lm.QCIn
		case lm.HasOut:
			lm.QC = lm.QCOut
		}
	}
	return nil
}

// sideMetrics turns one EVBMF result into rank, KG, MC and QC for a side of c channels.
func sideMetrics(r EVBMFResult, c int) (rank, kg, mc, qc float64) {
	if c <= 0 {
		return 0, 0, 0, 0
	}
	rank = float64(r.Rank) / float64(c)
	if r.Rank > 0 {
		first := r.Values[0]
		var sum float64
		for _, v := range r.Values {
			sum += v / first
		}
		kg = sum / float64(c)
		mc = first / r.Values[r.Rank-1]
	}
	den := 1.0
	if mc != 0 {
		den = 1 - 1/mc
	}
	return rank, kg, mc, math.Atan2(rank, den)
}

// Unfold returns the unfolding of a tensor along axis (0 or 1) as a float64 matrix: row i holds every
// element whose index on that axis is i, in row-major order of the remaining axes (for axis 1 of a
// C_out × C_in × kh × kw conv weight: column o·kh·kw + k). It panics when axis is not 0 or 1, or
// when w does not hold the product of dims (or that product is zero).
func Unfold(w []float32, dims []int64, axis int) *mat.Dense {
	if axis != 0 && axis != 1 || len(dims) < 2 {
		panic(fmt.Sprintf("optimizer.Unfold: axis %d of shape %v", axis, dims))
	}
	d0, d1 := int(dims[0]), int(dims[1])
	inner := 1 // elements per (i, j) pair: the trailing axes
	for _, d := range dims[2:] {
		inner *= int(d)
	}
	if len(w) != d0*d1*inner {
		panic(fmt.Sprintf("optimizer.Unfold: %d values for shape %v", len(w), dims))
	}
	data := make([]float64, len(w))
	if axis == 0 {
		for i, v := range w {
			data[i] = float64(v)
		}
		return mat.NewDense(d0, d1*inner, data)
	}
	// Row j gathers, for each i in order, the block w[i, j, :].
	cols := d0 * inner
	for i := 0; i < d0; i++ {
		for j := 0; j < d1; j++ {
			src := w[(i*d1+j)*inner : (i*d1+j+1)*inner]
			dst := data[j*cols+i*inner : j*cols+(i+1)*inner]
			for k, v := range src {
				dst[k] = float64(v)
			}
		}
	}
	return mat.NewDense(d1, cols, data)
}

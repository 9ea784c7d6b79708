package optimizer

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/linalg"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
	"gonum.org/v1/gonum/mat"
)

// RefitOptions tunes the layer-wise least-squares refit.
type RefitOptions struct {
	Images  int     // calibration images used (0: 1024)
	Rows    int     // sampled rows per unknown of a layer's system (0: 8)
	Ridge   float64 // ridge strength relative to the mean diagonal of XᵀX (0: 1e-3)
	Batch   int
	Threads int
	Seed    uint64
	// MaxTime bounds the refit (0: none): the images are cut to what a probe of the teacher's speed
	// says fits, at least 32.
	MaxTime time.Duration
	// Progress, if set, is told after each layer.
	Progress func(done, total int)
}

// Refit re-fits, layer by layer in topological order, the weights of each Conv (group 1) and Gemm
// of the student whose input channels were cut, by ridge regression of the teacher's output of that
// layer on the student's own input to it (as ThiNet and He et al. 2017 reconstruct pruned layers).
// Each refit sees the inputs the previous refits produce. It returns how many layers it refit.
//
// Memory is bounded by the model, not the images: one pass of the teacher records its outputs only
// at the positions each layer samples, and each layer's normal equations (XᵀX and XᵀY) are then
// fed batch by batch from a run of the student cut off at that layer's input.
func Refit(teacher, student *onnx.Model, corr map[string]rewrite.Correspondence, set *dataset.Set, opt RefitOptions) (int, error) {
	if opt.Images <= 0 {
		opt.Images = 1024
	}
	if opt.Rows <= 0 {
		opt.Rows = 8
	}
	if opt.Ridge <= 0 {
		opt.Ridge = 1e-3
	}
	if opt.Batch <= 0 {
		opt.Batch = 64
	}
	sg := student.Graph
	var todo []*refitLayer
	for _, n := range sg.Nodes {
		if l := newRefitLayer(sg, n, corr[n.Label()]); l != nil {
			todo = append(todo, l)
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	var targets []string
	for _, l := range todo {
		targets = append(targets, l.n.Outputs[0])
	}
	batch := memBatch(teacher, targets, opt.Batch)
	sub := set.Head(opt.Images)
	if opt.MaxTime > 0 && sub.N > 32 {
		// The teacher runs once, the student once per layer cut off at its input (about half the
		// network on average). The plan uses forwardCost's constant speed, not a timing, so the
		// same inputs refit on the same images on any machine.
		perImage, err := forwardCost(teacher, sub)
		if err != nil {
			return 0, err
		}
		// Each layer's normal equations cost about rows·d·(d/2 + cout) multiply-adds, whatever
		// the images: at 224×224 the last layers' (d = 4,609) dominate. Fewer rows per unknown
		// (at least 2, the ridge keeps the system sound) hold them to half of the time.
		gram := 0.0
		for _, l := range todo {
			gram += float64(opt.Rows*l.d) * float64(l.d) * (float64(l.d)/2 + float64(l.cout))
		}
		gramTime := time.Duration(gram / gramMACRate * float64(time.Second))
		if gramTime > opt.MaxTime/2 {
			rows := max(2, int(float64(opt.Rows)*float64(opt.MaxTime/2)/float64(gramTime)))
			gramTime = gramTime * time.Duration(rows) / time.Duration(opt.Rows)
			opt.Rows = rows
		}
		passes := 1 + float64(len(todo))/2
		left := max(opt.MaxTime/2, opt.MaxTime-gramTime)
		if fit := int(float64(left) / (passes * float64(perImage))); fit < sub.N {
			sub = set.Head(max(32, fit))
		}
	}
	for i, l := range todo {
		l.plan(sub.N, opt.Rows, opt.Seed, i)
	}
	if opt.Progress != nil {
		opt.Progress(0, len(todo)) // the teacher's pass comes first
	}
	if err := recordTeacherOutputs(teacher, todo, targets, sub, batch, opt.Threads); err != nil {
		return 0, err
	}
	for i, l := range todo {
		prefix := prefixModel(student, l.n.Inputs[0])
		sp, err := engine.Compile(prefix, engine.Options{Threads: opt.Threads, NoFusion: true})
		if err != nil {
			return i, err
		}
		sys := linalg.NewNormalEquations(l.d, l.cout)
		at := 0
		err = forEachBatch(sp, sub, batch, []string{l.n.Inputs[0]}, func(vals map[string]*engine.Tensor) error {
			x := vals[l.n.Inputs[0]]
			if err := l.addRows(sys, x, at); err != nil {
				return err
			}
			at += x.Shape[0]
			return nil
		})
		sp.Close()
		if err != nil {
			return i, fmt.Errorf("refit %s: %w", l.n.Label(), err)
		}
		sol, err := sys.SolveRidge(opt.Ridge)
		if err != nil {
			return i, fmt.Errorf("refit %s: %w", l.n.Label(), err)
		}
		l.setWeights(sg, sol)
		l.pos, l.y = nil, nil // the teacher's outputs at this layer are used up
		if opt.Progress != nil {
			opt.Progress(i+1, len(todo))
		}
	}
	return len(todo), nil
}

// recordTeacherOutputs runs the teacher once over set and records each layer's outputs at its
// sampled positions. The teacher's program (its packed weights and its buffers for every target
// at batch) is released when the pass ends, before the student passes begin.
func recordTeacherOutputs(teacher *onnx.Model, todo []*refitLayer, targets []string, set *dataset.Set, batch, threads int) error {
	tp, err := engine.Compile(teacher, engine.Options{Threads: threads, NoFusion: true})
	if err != nil {
		return err
	}
	defer tp.Close()
	at := 0
	return forEachBatch(tp, set, batch, targets, func(vals map[string]*engine.Tensor) error {
		nb := 0
		for _, l := range todo {
			y := vals[l.n.Outputs[0]]
			nb = y.Shape[0]
			if err := l.recordTeacher(y, at); err != nil {
				return fmt.Errorf("refit %s: %w", l.n.Label(), err)
			}
		}
		at += nb
		return nil
	})
}

// gramMACRate is the speed the refit's plan assumes for accumulating normal equations (linalg's
// float64 GemmNT on one core), a constant like engineMACRate so that the plan, and the result, do
// not depend on the machine's load.
const gramMACRate = 4e9

// prefixModel is m cut off at the values outs: the nodes they depend on, sharing m's nodes and
// tensors. Running it costs only the part of the network before them.
func prefixModel(m *onnx.Model, outs ...string) *onnx.Model {
	g := m.Graph
	keep, live := onnx.Needed(g, outs...)
	c := *m
	cg := *g
	cg.Nodes = nil
	for i, n := range g.Nodes {
		if keep[i] {
			cg.Nodes = append(cg.Nodes, n)
		}
	}
	cg.Outputs = append([]string(nil), outs...)
	cg.Inits = map[string]*onnx.Tensor{}
	cg.InitOrder = nil
	for _, name := range g.InitOrder {
		if t, ok := g.Inits[name]; ok && live[name] {
			cg.Inits[name] = t
			cg.InitOrder = append(cg.InitOrder, name)
		}
	}
	for name, t := range g.Inits {
		if _, ok := cg.Inits[name]; !ok && live[name] {
			cg.Inits[name] = t
		}
	}
	c.Graph = &cg
	return &c
}

// refitLayer is one layer's least-squares problem: the output positions it samples in each image
// (all of a Gemm's one), the teacher's outputs there, and how to read the student's input rows.
type refitLayer struct {
	n       *onnx.Node
	w, bias *onnx.Tensor
	out     []int // the teacher's channel of each student output channel (nil: the same)
	conv    bool
	transB  bool
	d, cout int // unknowns per output (inputs, plus one for the bias) and outputs
	kIn     int // a dense layer's inputs
	perImg  int // sampled positions per image
	rng     *rand.Rand
	pos     []int32   // per image, perImg positions (oh·OW + ow); conv only
	y       []float32 // per sampled row, cout teacher outputs
}

// newRefitLayer returns the refit problem of node n, or nil when n is not a layer the refit
// handles (not a cut consumer, a grouped conv, a computed weight or bias).
func newRefitLayer(g *onnx.Graph, n *onnx.Node, c rewrite.Correspondence) *refitLayer {
	if c.In == nil {
		return nil
	}
	w, ok := g.Inits[n.Input(1)]
	if !ok || w.Floats == nil {
		return nil
	}
	l := &refitLayer{n: n, w: w, out: c.Out}
	switch {
	case n.OpType == "Conv" && n.Int("group", 1) == 1 && len(w.Dims) == 4:
		l.conv = true
		l.cout, l.d = int(w.Dims[0]), int(w.Dims[1]*w.Dims[2]*w.Dims[3])
	case n.OpType == "Gemm" && n.Int("transA", 0) == 0 && n.Float("alpha", 1) == 1 && n.Float("beta", 1) == 1 && len(w.Dims) == 2:
		l.transB = n.Int("transB", 0) != 0
		fallthrough
	case n.OpType == "MatMul" && len(w.Dims) == 2:
		l.kIn, l.cout = int(w.Dims[0]), int(w.Dims[1])
		if l.transB {
			l.kIn, l.cout = l.cout, l.kIn
		}
		l.d = l.kIn
	default:
		return nil
	}
	if b := n.Input(2); b != "" {
		t, ok := g.Inits[b]
		if !ok || t.Floats == nil {
			return nil // a computed bias: leave the layer alone
		}
		if !l.conv && len(t.Floats) != l.cout && len(t.Floats) != 1 {
			return nil
		}
		l.bias = t
		l.d++
	}
	return l
}

// plan sizes the sample for images images: a conv samples enough positions per image for rows
// rows per unknown; a dense layer takes one row per image. Layer i draws from its own stream, so
// its positions do not depend on how many layers come before it or on the batching.
func (l *refitLayer) plan(images, rows int, seed uint64, i int) {
	l.perImg = 1
	if l.conv {
		l.perImg = (rows*l.d + images - 1) / images
	}
	l.rng = rand.New(rand.NewPCG(seed, 17+uint64(i)))
	l.pos = make([]int32, 0, images*l.perImg)
	l.y = make([]float32, 0, images*l.perImg*l.cout)
}

// recordTeacher keeps the teacher's outputs y (images from index at on) at the sampled positions.
func (l *refitLayer) recordTeacher(y *engine.Tensor, at int) error {
	nb := y.Shape[0]
	tc := y.Len() / nb
	plane := 1
	if l.conv {
		if len(y.Shape) != 4 {
			return fmt.Errorf("teacher output of shape %v, want N×C×H×W", y.Shape)
		}
		tc, plane = y.Shape[1], y.Shape[2]*y.Shape[3]
	}
	for b := 0; b < nb; b++ {
		for s := 0; s < l.perImg; s++ {
			p := 0
			if l.conv {
				p = l.rng.IntN(plane)
				l.pos = append(l.pos, int32(p))
			}
			for o := 0; o < l.cout; o++ {
				to := o
				if l.out != nil {
					to = l.out[o]
				}
				l.y = append(l.y, y.Data[(b*tc+to)*plane+p])
			}
		}
	}
	return nil
}

// addRows feeds the student's inputs x (images from index at on) into the normal equations, one
// row per sampled position, against the teacher's outputs recorded there.
func (l *refitLayer) addRows(sys *linalg.NormalEquations, x *engine.Tensor, at int) error {
	nb := x.Shape[0]
	if !l.conv {
		if len(x.Shape) != 2 || x.Shape[1] != l.kIn {
			return fmt.Errorf("input of shape %v, want N×%d", x.Shape, l.kIn)
		}
		for b := 0; b < nb; b++ {
			xr, yr := sys.Row()
			for k := 0; k < l.kIn; k++ {
				xr[k] = float64(x.Data[b*l.kIn+k])
			}
			if l.bias != nil {
				xr[l.kIn] = 1
			}
			row := l.y[(at+b)*l.cout:]
			for o := range yr {
				yr[o] = float64(row[o])
			}
		}
		return nil
	}
	cin, kh, kw := int(l.w.Dims[1]), int(l.w.Dims[2]), int(l.w.Dims[3])
	if len(x.Shape) != 4 || x.Shape[1] != cin {
		return fmt.Errorf("input of shape %v, want N×%d×H×W", x.Shape, cin)
	}
	H, W := x.Shape[2], x.Shape[3]
	win := onnx.NodeWindow(l.n, l.w.Dims[2:])
	sh, sw, dh, dw := int(win.Stride(0)), int(win.Stride(1)), int(win.Dilation(0)), int(win.Dilation(1))
	sp, pads, _, err := win.Output([]int64{int64(H), int64(W)})
	if err != nil {
		return err
	}
	OH, OW, pt, pl := int(sp[0]), int(sp[1]), int(pads[0]), int(pads[1])
	for b := 0; b < nb; b++ {
		for s := 0; s < l.perImg; s++ {
			r := (at+b)*l.perImg + s
			p := int(l.pos[r])
			oh, ow := p/OW, p%OW
			if oh >= OH {
				return fmt.Errorf("teacher position %d outside the student's %d×%d output", p, OH, OW)
			}
			xr, yr := sys.Row()
			k := 0
			for ci := 0; ci < cin; ci++ {
				plane := x.Data[(b*cin+ci)*H*W:]
				for i := 0; i < kh; i++ {
					ih := oh*sh - pt + i*dh
					for j := 0; j < kw; j++ {
						iw := ow*sw - pl + j*dw
						v := 0.0
						if ih >= 0 && ih < H && iw >= 0 && iw < W {
							v = float64(plane[ih*W+iw])
						}
						xr[k] = v
						k++
					}
				}
			}
			if l.bias != nil {
				xr[k] = 1
			}
			row := l.y[r*l.cout:]
			for o := range yr {
				yr[o] = float64(row[o])
			}
		}
	}
	return nil
}

// setWeights writes the solution (d×cout, the bias in the last row) into the student's layer.
func (l *refitLayer) setWeights(g *onnx.Graph, sol *mat.Dense) {
	w := l.w
	nw := &onnx.Tensor{Type: w.Type, Dims: append([]int64(nil), w.Dims...), Floats: make([]float32, len(w.Floats))}
	k := l.d
	if l.bias != nil {
		k--
	}
	for o := 0; o < l.cout; o++ {
		for i := 0; i < k; i++ {
			switch {
			case l.conv || l.transB:
				nw.Floats[o*k+i] = float32(sol.At(i, o))
			default:
				nw.Floats[i*l.cout+o] = float32(sol.At(i, o))
			}
		}
	}
	setConst(g, l.n, 1, nw)
	if l.bias != nil && len(l.bias.Floats) == l.cout {
		nb := &onnx.Tensor{Type: l.bias.Type, Dims: append([]int64(nil), l.bias.Dims...), Floats: make([]float32, l.cout)}
		for o := 0; o < l.cout; o++ {
			nb.Floats[o] = float32(sol.At(l.d-1, o))
		}
		setConst(g, l.n, 2, nb)
	}
}

package optimizer

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// RefitOptions tunes the layer-wise least-squares refit.
type RefitOptions struct {
	Images  int     // calibration images used (0: 256)
	Rows    int     // sampled rows per unknown of a layer's system (0: 8)
	Ridge   float64 // ridge strength relative to the mean diagonal of XᵀX (0: 1e-3)
	Batch   int
	Threads int
	Seed    uint64
	// Progress, if set, is told after each layer.
	Progress func(done, total int)
}

// Refit re-fits, layer by layer in topological order, the weights of each Conv (group 1) and Gemm
// of the student whose input channels were cut, by ridge regression of the teacher's output of that
// layer on the student's own input to it (as ThiNet and He et al. 2017 reconstruct pruned layers).
// Each refit sees the inputs the previous refits produce. It returns how many layers it refit.
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
	sub := set.Head(opt.Images)
	sg := student.Graph
	var todo []*onnx.Node
	for _, n := range sg.Nodes {
		c, ok := corr[n.Label()]
		if !ok || c.In == nil {
			continue
		}
		w, ok := sg.Inits[n.Input(1)]
		if !ok || w.Floats == nil {
			continue
		}
		switch {
		case n.OpType == "Conv" && n.Int("group", 1) == 1 && len(w.Dims) == 4:
		case n.OpType == "Gemm" && n.Int("transA", 0) == 0 && n.Float("alpha", 1) == 1 && n.Float("beta", 1) == 1 && len(w.Dims) == 2:
		case n.OpType == "MatMul" && len(w.Dims) == 2:
		default:
			continue
		}
		todo = append(todo, n)
	}
	if len(todo) == 0 {
		return 0, nil
	}
	var targets []string
	for _, n := range todo {
		targets = append(targets, n.Outputs[0])
	}
	tp, err := engine.Compile(teacher, engine.Options{Threads: opt.Threads, NoFusion: true})
	if err != nil {
		return 0, err
	}
	defer tp.Close()
	// The teacher's outputs of every layer to refit, for the whole subset (they do not change).
	teacherOut := map[string][]*engine.Tensor{}
	err = forEachBatch(tp, sub, opt.Batch, targets, func(vals map[string]*engine.Tensor) error {
		for _, t := range targets {
			teacherOut[t] = append(teacherOut[t], vals[t])
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 17))
	for i, n := range todo {
		sp, err := engine.Compile(student, engine.Options{Threads: opt.Threads, NoFusion: true})
		if err != nil {
			return i, err
		}
		var inputs []*engine.Tensor
		err = forEachBatch(sp, sub, opt.Batch, []string{n.Inputs[0]}, func(vals map[string]*engine.Tensor) error {
			inputs = append(inputs, vals[n.Inputs[0]])
			return nil
		})
		sp.Close()
		if err != nil {
			return i, err
		}
		if err := refitNode(sg, n, corr[n.Label()], inputs, teacherOut[n.Outputs[0]], opt, rng); err != nil {
			return i, fmt.Errorf("refit %s: %w", n.Label(), err)
		}
		if opt.Progress != nil {
			opt.Progress(i+1, len(todo))
		}
	}
	return len(todo), nil
}

// normalSystem accumulates XᵀX and XᵀY for a ridge regression, a block of rows at a time.
type normalSystem struct {
	d, k  int
	xtx   *mat.SymDense
	xty   *mat.Dense
	block []float64 // rows × d
	yblk  []float64 // rows × k
	rows  int
}

const blockRows = 256

func newNormalSystem(d, k int) *normalSystem {
	return &normalSystem{d: d, k: k, xtx: mat.NewSymDense(d, nil), xty: mat.NewDense(d, k, nil),
		block: make([]float64, blockRows*d), yblk: make([]float64, blockRows*k)}
}

// row returns the next row's x and y buffers to fill.
func (s *normalSystem) row() (x, y []float64) {
	if s.rows == blockRows {
		s.flush()
	}
	x = s.block[s.rows*s.d : (s.rows+1)*s.d]
	y = s.yblk[s.rows*s.k : (s.rows+1)*s.k]
	s.rows++
	return x, y
}

func (s *normalSystem) flush() {
	if s.rows == 0 {
		return
	}
	x := mat.NewDense(s.rows, s.d, s.block[:s.rows*s.d])
	y := mat.NewDense(s.rows, s.k, s.yblk[:s.rows*s.k])
	s.xtx.SymRankK(s.xtx, 1, x.T())
	var xy mat.Dense
	xy.Mul(x.T(), y)
	s.xty.Add(s.xty, &xy)
	s.rows = 0
}

// solve returns the d × k ridge solution.
func (s *normalSystem) solve(ridge float64) (*mat.Dense, error) {
	s.flush()
	tr := 0.0
	for i := 0; i < s.d; i++ {
		tr += s.xtx.At(i, i)
	}
	lambda := ridge * tr / float64(s.d)
	if lambda == 0 {
		lambda = 1e-8
	}
	a := mat.NewSymDense(s.d, nil)
	a.CopySym(s.xtx)
	for i := 0; i < s.d; i++ {
		a.SetSym(i, i, a.At(i, i)+lambda)
	}
	var ch mat.Cholesky
	if !ch.Factorize(a) {
		return nil, fmt.Errorf("the normal equations are not positive definite")
	}
	var w mat.Dense
	if err := ch.SolveTo(&w, s.xty); err != nil {
		return nil, err
	}
	return &w, nil
}

func refitNode(g *onnx.Graph, n *onnx.Node, c rewrite.Correspondence, inputs, targets []*engine.Tensor, opt RefitOptions, rng *rand.Rand) error {
	w := g.Inits[n.Inputs[1]]
	var bias *onnx.Tensor
	if b := n.Input(2); b != "" {
		if t, ok := g.Inits[b]; ok && t.Floats != nil {
			bias = t
		} else {
			return nil // a computed bias: leave the layer alone
		}
	}
	out := c.Out
	if n.OpType == "Conv" {
		return refitConv(g, n, w, bias, out, inputs, targets, opt, rng)
	}
	return refitDense(g, n, w, bias, out, inputs, targets, opt)
}

func refitConv(g *onnx.Graph, n *onnx.Node, w, bias *onnx.Tensor, out []int, inputs, targets []*engine.Tensor, opt RefitOptions, rng *rand.Rand) error {
	cout, cin, kh, kw := int(w.Dims[0]), int(w.Dims[1]), int(w.Dims[2]), int(w.Dims[3])
	d := cin * kh * kw
	withBias := bias != nil
	if withBias {
		d++
	}
	win := onnx.NodeWindow(n, w.Dims[2:])
	sh, sw, dh, dw := int(win.Stride(0)), int(win.Stride(1)), int(win.Dilation(0)), int(win.Dilation(1))
	sys := newNormalSystem(d, cout)
	total := 0
	for _, t := range targets {
		total += t.Shape[0]
	}
	perImage := (opt.Rows*d + total - 1) / total
	for bi, x := range inputs {
		y := targets[bi]
		nb, H, W := x.Shape[0], x.Shape[2], x.Shape[3]
		tc, OH, OW := y.Shape[1], y.Shape[2], y.Shape[3]
		sp, pads, _, err := win.Output([]int64{int64(H), int64(W)})
		if err != nil {
			return fmt.Errorf("refit %s: %w", n.Label(), err)
		}
		if int(sp[0]) != OH || int(sp[1]) != OW {
			return fmt.Errorf("refit %s: its window gives a %v output, the teacher's is %dx%d", n.Label(), sp, OH, OW)
		}
		pt, pl := int(pads[0]), int(pads[1])
		for b := 0; b < nb; b++ {
			for s := 0; s < perImage; s++ {
				oh, ow := rng.IntN(OH), rng.IntN(OW)
				xr, yr := sys.row()
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
				if withBias {
					xr[k] = 1
				}
				for o := 0; o < cout; o++ {
					to := o
					if out != nil {
						to = out[o]
					}
					yr[o] = float64(y.Data[((b*tc+to)*OH+oh)*OW+ow])
				}
			}
		}
	}
	sol, err := sys.solve(opt.Ridge)
	if err != nil {
		return err
	}
	nw := &onnx.Tensor{Type: w.Type, Dims: append([]int64(nil), w.Dims...), Floats: make([]float32, len(w.Floats))}
	for o := 0; o < cout; o++ {
		for k := 0; k < cin*kh*kw; k++ {
			nw.Floats[o*cin*kh*kw+k] = float32(sol.At(k, o))
		}
	}
	setConst(g, n, 1, nw)
	if withBias {
		nb := &onnx.Tensor{Type: bias.Type, Dims: append([]int64(nil), bias.Dims...), Floats: make([]float32, cout)}
		for o := 0; o < cout; o++ {
			nb.Floats[o] = float32(sol.At(d-1, o))
		}
		setConst(g, n, 2, nb)
	}
	return nil
}

func refitDense(g *onnx.Graph, n *onnx.Node, w, bias *onnx.Tensor, out []int, inputs, targets []*engine.Tensor, opt RefitOptions) error {
	transB := n.OpType == "Gemm" && n.Int("transB", 0) != 0
	kIn, kOut := int(w.Dims[0]), int(w.Dims[1])
	if transB {
		kIn, kOut = kOut, kIn
	}
	withBias := bias != nil && (len(bias.Floats) == kOut || len(bias.Floats) == 1)
	if bias != nil && !withBias {
		return nil
	}
	d := kIn
	if withBias {
		d++
	}
	sys := newNormalSystem(d, kOut)
	for bi, x := range inputs {
		y := targets[bi]
		rows := x.Shape[0]
		if len(x.Shape) != 2 || x.Shape[1] != kIn {
			return fmt.Errorf("input of shape %v, want N×%d", x.Shape, kIn)
		}
		tc := y.Len() / rows
		for r := 0; r < rows; r++ {
			xr, yr := sys.row()
			for k := 0; k < kIn; k++ {
				xr[k] = float64(x.Data[r*kIn+k])
			}
			if withBias {
				xr[kIn] = 1
			}
			for o := 0; o < kOut; o++ {
				to := o
				if out != nil {
					to = out[o]
				}
				yr[o] = float64(y.Data[r*tc+to])
			}
		}
	}
	sol, err := sys.solve(opt.Ridge)
	if err != nil {
		return err
	}
	nw := &onnx.Tensor{Type: w.Type, Dims: append([]int64(nil), w.Dims...), Floats: make([]float32, len(w.Floats))}
	for k := 0; k < kIn; k++ {
		for o := 0; o < kOut; o++ {
			if transB {
				nw.Floats[o*kIn+k] = float32(sol.At(k, o))
			} else {
				nw.Floats[k*kOut+o] = float32(sol.At(k, o))
			}
		}
	}
	setConst(g, n, 1, nw)
	if withBias && len(bias.Floats) == kOut {
		nb := &onnx.Tensor{Type: bias.Type, Dims: append([]int64(nil), bias.Dims...), Floats: make([]float32, kOut)}
		for o := 0; o < kOut; o++ {
			nb.Floats[o] = float32(sol.At(d-1, o))
		}
		setConst(g, n, 2, nb)
	}
	return nil
}

package optimizer

import (
	"fmt"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// CompensateReport says what Compensate changed.
type CompensateReport struct {
	Layers int `json:"layers"` // consumers whose bias was shifted
	// Channels counts the removed inputs folded in, per consumer: a channel read by two layers
	// counts twice, a flattened channel once per Gemm column.
	Channels int `json:"channels"`
	Skipped  int `json:"skipped"` // removed inputs left as they were: no estimate, or a bias that cannot be shifted per output
}

// Compensate folds the expected contribution of every removed channel into the bias of each node
// that read it. A removed channel is seldom zero on average (after a ReLU its mean is positive), so
// cutting it shifts the mean of every output of its consumers; replacing the channel by its mean,
// which a constant in the consumer's bias does exactly, removes that shift and leaves only the
// channel's variation lost.
//
// The consumers are the nodes whose weight inputs Slice cut (corr[label].In): a Conv gets, on each
// output channel j that read a removed input channel c, E[x_c]·Σ_kernel W[j,c,:,:] (a grouped Conv
// only on the outputs of c's block; a depthwise Conv is never a consumer: it is sliced with its
// channel, and its own consumer downstream is compensated); a Gemm gets Σ over its removed input
// columns of E[x_col]·B[col,j]. Ops between the cut channel and the consumer (BN, activations,
// pooling, residual adds) are covered because the mean is taken at the consumer's input. A Conv or
// Gemm without a bias gets one. Near the borders of a padded convolution the kernel reads zeros
// for some taps, so the true shift varies with the position and no bias can match it everywhere;
// each tap's weight is counted by the share of output positions at which it reads the map
// (tapCoverage), which makes the shift right on average over the positions (on the 3×3 maps of
// the bundled nets the border is most of the map). Where the means are estimated, edge effects
// are otherwise ignored.
//
// teacher is the model sliced, with its weights untouched; mom gives the moments of its values
// (per channel, or per column, along axis 1), from EstimateMoments or MeasureMoments. The student
// is changed in place.
func Compensate(teacher, student *onnx.Model, corr map[string]rewrite.Correspondence, mom map[string]*Moments) (CompensateReport, error) {
	var rep CompensateReport
	tg, sg := teacher.Graph, student.Graph
	byLabel := map[string]*onnx.Node{}
	for _, n := range sg.Nodes {
		byLabel[n.Label()] = n
	}
	for _, n := range tg.Nodes {
		c, ok := corr[n.Label()]
		if !ok || c.In == nil || (n.OpType != "Conv" && n.OpType != "Gemm") {
			continue
		}
		sn := byLabel[n.Label()]
		w := tg.Inits[n.Input(1)]
		if sn == nil || w == nil || w.Floats == nil {
			continue
		}
		var x []float64
		if mo := mom[n.Input(0)]; mo != nil {
			x = mo.Mean
		}
		var delta []float64
		var removed int
		var err error
		switch n.OpType {
		case "Conv":
			delta, removed, err = convShift(tg, n, w, c.In, x)
		case "Gemm":
			delta, removed, err = gemmShift(n, w, c.In, x)
		}
		if err != nil {
			return rep, fmt.Errorf("node %s: %w", n.Label(), err)
		}
		if delta == nil {
			rep.Skipped += removed
			continue
		}
		if !addBias(sg, sn, delta, c.Out) {
			rep.Skipped += removed
			continue
		}
		rep.Layers++
		rep.Channels += removed
	}
	return rep, nil
}

// MeasureMoments measures on data the moments of the input of every Conv, Gemm and MatMul: what
// Compensate and ContributionImportance read, exact where EstimateMoments guesses.
func MeasureMoments(m *onnx.Model, set *dataset.Set, batch, threads int) (map[string]*Moments, error) {
	var keep []string
	seen := map[string]bool{}
	for _, n := range m.Graph.Nodes {
		if (n.OpType == "Conv" || n.OpType == "Gemm" || n.OpType == "MatMul") && !seen[n.Input(0)] && n.Input(0) != "" {
			if _, isConst := m.Graph.Inits[n.Input(0)]; !isConst {
				seen[n.Input(0)] = true
				keep = append(keep, n.Input(0))
			}
		}
	}
	ms, err := momentsOf(m, keep, set, batch, threads)
	if err != nil {
		return nil, err
	}
	out := map[string]*Moments{}
	for i, name := range keep {
		c := &ms[i]
		if c.sum == nil {
			continue
		}
		mo := &Moments{Mean: make([]float64, len(c.sum)), Var: make([]float64, len(c.sum))}
		for k := range mo.Mean {
			mo.Mean[k], mo.Var[k] = c.mean(k), c.variance(k)
		}
		out[name] = mo
	}
	return out, nil
}

// removedOf lists the positions in [0, n) that keep does not hold (keep ascending).
func removedOf(keep []int, n int) []int {
	var out []int
	k := 0
	for i := 0; i < n; i++ {
		if k < len(keep) && keep[k] == i {
			k++
			continue
		}
		out = append(out, i)
	}
	return out
}

// convShift is the shift of each original output channel of a Conv caused by removing its input
// channels not in keep, each replaced by its mean. It returns nil (and the count of removed
// channels) when a mean is missing.
func convShift(g *onnx.Graph, n *onnx.Node, w *onnx.Tensor, keep []int, mean []float64) ([]float64, int, error) {
	if len(w.Dims) < 3 {
		return nil, 0, fmt.Errorf("weight of rank %d", len(w.Dims))
	}
	group := int(n.Int("group", 1))
	cout, cinPer := int(w.Dims[0]), int(w.Dims[1])
	cin := cinPer * group
	removed := removedOf(keep, cin)
	if len(removed) == 0 {
		return nil, 0, nil
	}
	if len(mean) != cin || cout%group != 0 {
		return nil, len(removed), nil
	}
	inner := len(w.Floats) / (cout * cinPer)
	outPer := cout / group
	cov := tapCoverage(g, n, w.Dims[2:])
	delta := make([]float64, cout)
	for _, c := range removed {
		blk, cl := c/cinPer, c%cinPer
		for j := blk * outPer; j < (blk+1)*outPer; j++ {
			delta[j] += mean[c] * kernelSum(w.Floats[(j*cinPer+cl)*inner:(j*cinPer+cl+1)*inner], cov)
		}
	}
	return delta, len(removed), nil
}

// gemmShift is convShift for a Gemm, in units of its bias C (divided by beta).
func gemmShift(n *onnx.Node, w *onnx.Tensor, keep []int, mean []float64) ([]float64, int, error) {
	if len(w.Dims) != 2 || n.Int("transA", 0) != 0 {
		return nil, 0, nil
	}
	K, N := int(w.Dims[0]), int(w.Dims[1])
	trans := n.Int("transB", 0) != 0
	if trans {
		K, N = N, K
	}
	removed := removedOf(keep, K)
	if len(removed) == 0 {
		return nil, 0, nil
	}
	alpha, beta := float64(n.Float("alpha", 1)), float64(n.Float("beta", 1))
	if len(mean) != K || (n.Input(2) != "" && beta == 0) {
		return nil, len(removed), nil
	}
	if n.Input(2) == "" {
		beta = 1 // a new C will be added with beta set to 1
	}
	delta := make([]float64, N)
	for _, i := range removed {
		for j := 0; j < N; j++ {
			wij := w.Floats[i*N+j]
			if trans {
				wij = w.Floats[j*K+i]
			}
			delta[j] += mean[i] * float64(wij)
		}
	}
	for j := range delta {
		delta[j] *= alpha / beta
	}
	return delta, len(removed), nil
}

// addBias adds delta[out[j]] to the bias of the student node's output j (out nil: all kept),
// creating the bias when the node has none. It reports false when the bias has a shape it cannot
// shift per output.
func addBias(g *onnx.Graph, n *onnx.Node, delta []float64, out []int) bool {
	orig := func(j int) int {
		if out == nil {
			return j
		}
		return out[j]
	}
	cout := len(delta)
	if out != nil {
		cout = len(out)
	}
	name := n.Input(2)
	if name == "" {
		b := &onnx.Tensor{Type: onnx.Float, Dims: []int64{int64(cout)}, Floats: make([]float32, cout)}
		for j := range b.Floats {
			b.Floats[j] = float32(delta[orig(j)])
		}
		base := n.Label() + "_compensation"
		bname := base
		for i := 2; ; i++ {
			if _, clash := g.Values[bname]; !clash {
				break
			}
			bname = fmt.Sprintf("%s_%d", base, i)
		}
		for len(n.Inputs) < 2 {
			n.Inputs = append(n.Inputs, "")
		}
		n.Inputs = append(n.Inputs[:2], bname)
		b.Name = bname
		g.Inits[bname] = b
		g.InitOrder = append(g.InitOrder, bname)
		g.Values[bname] = &onnx.Value{Name: bname, Type: b.Type, Shape: b.Shape()}
		if n.OpType == "Gemm" {
			n.SetFloat("beta", 1)
		}
		return true
	}
	t, ok := g.Inits[name]
	if !ok || t.Floats == nil {
		return false
	}
	var nb *onnx.Tensor
	switch {
	case len(t.Floats) == cout && (len(t.Dims) == 0 || t.Dims[len(t.Dims)-1] == int64(cout)):
		nb = t.Clone()
	case len(t.Floats) == 1 && n.OpType == "Gemm":
		nb = &onnx.Tensor{Type: t.Type, Dims: []int64{int64(cout)}, Floats: make([]float32, cout)}
		for j := range nb.Floats {
			nb.Floats[j] = t.Floats[0]
		}
	default:
		return false
	}
	nb.Source = nil
	for j := range nb.Floats {
		nb.Floats[j] += float32(delta[orig(j)])
	}
	setConst(g, n, 2, nb)
	return true
}

// kernelSum is Σ_k w_k·cov_k (cov nil: every tap counts fully).
func kernelSum(w []float32, cov []float64) float64 {
	s := 0.0
	for k, v := range w {
		if cov != nil {
			s += float64(v) * cov[k]
		} else {
			s += float64(v)
		}
	}
	return s
}

// tapCoverage is, for each tap of a Conv's kernel (row-major over the spatial axes), the share of
// output positions at which that tap reads the input rather than the zero padding. A constant
// input channel c adds E[x_c]·Σ_k W[j,c,k]·coverage_k to output j on average over the positions:
// the full kernel sum inside, less near the borders, which on the 3×3 maps of a small network is
// most of the map. Nil when the shapes are unknown (then every tap counts fully).
func tapCoverage(g *onnx.Graph, n *onnx.Node, kernel []int64) []float64 {
	var in, out onnx.Shape
	if v, ok := g.Values[n.Input(0)]; ok {
		in = v.Shape
	}
	if v, ok := g.Values[n.Outputs[0]]; ok {
		out = v.Shape
	}
	k := len(kernel)
	if len(in) != k+2 || len(out) != k+2 || !in[2:].Static() || !out[2:].Static() {
		return nil
	}
	win := onnx.NodeWindow(n, kernel)
	_, pads, _, err := win.Output(in[2:].Sizes())
	if err != nil {
		return nil
	}
	perAxis := make([][]float64, k)
	for i := 0; i < k; i++ {
		s, d, pb := win.Stride(i), win.Dilation(i), pads[i]
		x, o := in[i+2].Size, out[i+2].Size
		if o <= 0 {
			return nil
		}
		cov := make([]float64, kernel[i])
		for u := int64(0); u < kernel[i]; u++ {
			hits := 0
			for p := int64(0); p < o; p++ {
				if at := p*s - pb + u*d; at >= 0 && at < x {
					hits++
				}
			}
			cov[u] = float64(hits) / float64(o)
		}
		perAxis[i] = cov
	}
	total := 1
	for _, kk := range kernel {
		total *= int(kk)
	}
	res := make([]float64, total)
	for t := range res {
		c, rem := 1.0, t
		for i := k - 1; i >= 0; i-- {
			c *= perAxis[i][rem%int(kernel[i])]
			rem /= int(kernel[i])
		}
		res[t] = c
	}
	return res
}

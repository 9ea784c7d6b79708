package optimizer

import (
	"math"
	"sort"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// ContributionImportance scores each channel of each group by what its consumers lose when it is
// removed and replaced by its mean (as Compensate does): the variance it adds to their outputs,
// Var[x_c]·Σ_j s_j²·(ρ(ΣW[j,c,:])² + (1−ρ)ΣW[j,c,:]²) for a Conv (s_j the scale of a BN that
// normalises the Conv's output, else 1; ρ from opt), Var[x_col]·Σ_j B[col,j]² summed over the
// channel's columns for a Gemm. Each consumer's losses are divided by the variance all its inputs
// add, so a score is the share of a consumer's output the channel carries; a channel read by
// several consumers (a residual stream, a DenseNet concatenation) adds its shares.
//
// A channel that is nearly constant (a small |γ| in the BN before it) scores low however large its
// filters are: removing it and folding its mean into the consumers' biases costs almost nothing.
// L1 filter norms (L1Importance) see none of that. Measured on the bundled models at the widths
// shrink --macs 0.9 --no-distill picks, compensated either way, this score kept 22 points more
// than L1 on mobilenetv2_se (90.7% against 69.1%), about 3 more on resnet8_bn and densenet, and
// 0.5 less on resnet8, whose BN is folded so that every channel's variance is assumed. mom gives the
// moments of the consumers' inputs (EstimateMoments, or data); where they are missing every input
// counts with variance 1. Groups that no Conv, Gemm or MatMul reads keep their L1 importance.
func ContributionImportance(a *rewrite.Analysis, mom map[string]*Moments, opt MomentOptions) map[rewrite.GroupID][]float64 {
	imp, _ := contribution(a, mom, opt.rho())
	return imp
}

// contribution returns the importance of each channel and its parts: the share of each consumer's
// output variance it carries, by consumer label.
func contribution(a *rewrite.Analysis, mom map[string]*Moments, rho float64) (map[rewrite.GroupID][]float64, map[rewrite.GroupID][]map[string]float64) {
	g := a.Model.Graph
	nodes := map[string]*onnx.Node{}
	for _, n := range g.Nodes {
		nodes[n.Label()] = n
	}
	imp := map[rewrite.GroupID][]float64{}
	shares := map[rewrite.GroupID][]map[string]float64{}
	for _, gr := range a.Groups {
		imp[gr.ID] = make([]float64, gr.Channels)
		shares[gr.ID] = make([]map[string]float64, gr.Channels)
	}
	// energy[node][pos]: the variance input position pos adds to the node's outputs.
	energy := map[string][]float64{}
	total := map[string]float64{}
	seen := map[rewrite.GroupID]bool{}
	for _, cs := range a.ConsumerSlices() {
		e, ok := energy[cs.Node]
		if !ok {
			e = inputEnergy(g, nodes[cs.Node], mom, rho)
			energy[cs.Node] = e
			for _, v := range e {
				total[cs.Node] += v
			}
		}
		if e == nil || total[cs.Node] == 0 {
			continue
		}
		s := 0.0
		for _, p := range cs.Inputs {
			if p < len(e) {
				s += e[p]
			}
		}
		share := s / total[cs.Node]
		imp[cs.Group][cs.Channel] += share
		if shares[cs.Group][cs.Channel] == nil {
			shares[cs.Group][cs.Channel] = map[string]float64{}
		}
		shares[cs.Group][cs.Channel][cs.Node] += share
		seen[cs.Group] = true
	}
	l1 := L1Importance(a)
	for id := range imp {
		if !seen[id] {
			imp[id] = l1[id]
		}
	}
	return imp, shares
}

// inputEnergy is, for each position of a Conv's, Gemm's or MatMul's input axis, the variance it
// adds to the node's outputs (nil for other nodes or non-constant weights).
func inputEnergy(g *onnx.Graph, n *onnx.Node, mom map[string]*Moments, rho float64) []float64 {
	if n == nil {
		return nil
	}
	w, ok := g.Inits[n.Input(1)]
	if !ok || w.Floats == nil {
		return nil
	}
	x := mom[n.Input(0)]
	variance := func(i, size int) float64 {
		if x == nil || len(x.Var) != size {
			return 1
		}
		return x.Var[i]
	}
	switch n.OpType {
	case "Conv":
		if len(w.Dims) < 3 {
			return nil
		}
		group := int(n.Int("group", 1))
		cout, cinPer := int(w.Dims[0]), int(w.Dims[1])
		if cout%group != 0 {
			return nil
		}
		cin, outPer := cinPer*group, cout/group
		inner := len(w.Floats) / (cout * cinPer)
		scale := bnScale(g, n.Outputs[0], cout)
		e := make([]float64, cin)
		for c := 0; c < cin; c++ {
			blk, cl := c/cinPer, c%cinPer
			sum := 0.0
			for j := blk * outPer; j < (blk+1)*outPer; j++ {
				var s, q float64
				for _, v := range w.Floats[(j*cinPer+cl)*inner : (j*cinPer+cl+1)*inner] {
					s += float64(v)
					q += float64(v) * float64(v)
				}
				f := 1.0
				if scale != nil {
					f = scale[j] * scale[j]
				}
				sum += f * (rho*s*s + (1-rho)*q)
			}
			e[c] = variance(c, cin) * sum
		}
		return e
	case "Gemm", "MatMul":
		if len(w.Dims) != 2 {
			return nil
		}
		K, N := int(w.Dims[0]), int(w.Dims[1])
		trans := n.OpType == "Gemm" && n.Int("transB", 0) != 0
		if trans {
			K, N = N, K
		}
		e := make([]float64, K)
		for i := 0; i < K; i++ {
			q := 0.0
			for j := 0; j < N; j++ {
				v := w.Floats[i*N+j]
				if trans {
					v = w.Floats[j*K+i]
				}
				q += float64(v) * float64(v)
			}
			e[i] = variance(i, K) * q
		}
		return e
	}
	return nil
}

// bnScale is the per-channel factor γ/√(v+ε) of the inference-mode BatchNormalization that is the
// only reader of value v (nil when there is none): what a consumer's output is multiplied by before
// anything else sees it.
func bnScale(g *onnx.Graph, v string, c int) []float64 {
	var bn *onnx.Node
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != v {
				continue
			}
			if bn != nil || n.OpType != "BatchNormalization" || n.Input(0) != v {
				return nil
			}
			bn = n
		}
	}
	if bn == nil || len(bn.Inputs) < 5 || bn.Int("training_mode", 0) != 0 || g.IsOutput(v) {
		return nil
	}
	gt, vt := g.Inits[bn.Inputs[1]], g.Inits[bn.Inputs[4]]
	if gt == nil || vt == nil || len(gt.Floats) != c || len(vt.Floats) != c {
		return nil
	}
	eps := float64(bn.Float("epsilon", 1e-5))
	out := make([]float64, c)
	for j := range out {
		out[j] = float64(gt.Floats[j]) / math.Sqrt(float64(vt.Floats[j])+eps)
	}
	return out
}

// ContributionFitness judges candidate widths without data by what the cut costs the consumers.
// Each group loses its lowest-scored channels under ContributionImportance (the ones KeepWidths
// removes); a consumer then loses the share l of its output variance those channels carried, from
// every group it reads (a DenseNet layer reads several). The fitness is −Σ_consumers l²: for small
// cuts each consumer's loss is nearly free, and a loss concentrated on one consumer costs more than
// the same total spread over many, so the search spreads its cuts. Summing l instead (or log(1−l))
// let the search take most of the budget from one or two groups whose scores looked cheap; measured
// at --macs 0.9 on the bundled models that lost up to 4.5 points more (resnet8_bn 85.0% against
// 89.5%) and gained at most 1.7 (vgg).
func ContributionFitness(a *rewrite.Analysis, mom map[string]*Moments, opt MomentOptions) Fitness {
	imp, shares := contribution(a, mom, opt.rho())
	type curve struct {
		node string
		pre  []float64 // pre[k]: the share of node lost when the group drops its k lowest channels
	}
	curves := map[rewrite.GroupID][]curve{}
	var ids []rewrite.GroupID
	for _, g := range a.Prunable() {
		order := make([]int, g.Channels)
		for i := range order {
			order[i] = i
		}
		sc := imp[g.ID]
		// KeepWidths keeps the highest scores, ties to the lower index: drop from the other end.
		sort.SliceStable(order, func(i, j int) bool { return sc[order[i]] > sc[order[j]] })
		byNode := map[string][]float64{}
		var names []string
		for k := 0; k < g.Channels; k++ {
			for node, v := range shares[g.ID][order[g.Channels-1-k]] {
				if byNode[node] == nil {
					byNode[node] = make([]float64, g.Channels+1)
					names = append(names, node)
				}
				byNode[node][k+1] += v
			}
		}
		sort.Strings(names)
		for _, node := range names {
			pre := byNode[node]
			for k := 1; k < len(pre); k++ {
				pre[k] += pre[k-1]
			}
			curves[g.ID] = append(curves[g.ID], curve{node, pre})
		}
		ids = append(ids, g.ID)
	}
	return func(w Widths) (float64, error) {
		lost := map[string]float64{}
		var order []string
		for _, id := range ids {
			k, ok := w[id]
			if !ok {
				continue
			}
			for _, c := range curves[id] {
				if drop := len(c.pre) - 1 - k; drop > 0 {
					if _, seen := lost[c.node]; !seen {
						order = append(order, c.node)
					}
					lost[c.node] += c.pre[drop]
				}
			}
		}
		f := 0.0
		for _, node := range order {
			f -= lost[node] * lost[node]
		}
		return f, nil
	}
}

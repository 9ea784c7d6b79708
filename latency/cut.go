package latency

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// fusedOps are the ops ONNX Runtime folds into the Conv or Gemm before them (BN into the weights,
// activations into the kernel), so a layer is timed with them, as it runs in the whole model.
var fusedOps = map[string]bool{
	"BatchNormalization": true, "Relu": true, "Clip": true, "LeakyRelu": true, "Sigmoid": true,
	"HardSigmoid": true, "HardSwish": true, "Tanh": true, "Elu": true,
}

// layer is one timed unit of the graph: a weighted node and the fused ops after it.
type layer struct {
	nodes   []*onnx.Node // the weighted node first
	input   onnx.Shape   // the weighted node's input, static
	inFull  int          // input channels (the weight's input axis)
	outFull int          // output channels
	// group is a Conv's group attribute; block-diagonal convs (as many channels in as out per
	// group: depthwise, RegNet's) shrink in and out together by whole groups.
	group    int
	diagonal bool
}

// channelAxis is the input axis that holds channels: 1 for a Conv (NCHW), the last for Gemm/MatMul.
func (l *layer) channelAxis() int {
	if l.nodes[0].OpType == "Conv" {
		return 1
	}
	return len(l.input) - 1
}

// plane is the number of elements of l's output per output channel (batch × spatial), 0 when its
// shape is not known.
func (l *layer) plane(g *onnx.Graph) int64 {
	last := l.nodes[len(l.nodes)-1]
	v := g.Values[last.Outputs[0]]
	if v == nil || !v.Shape.Static() || len(v.Shape) == 0 {
		return 0
	}
	axis := 1
	if l.nodes[0].OpType != "Conv" {
		axis = len(v.Shape) - 1
	}
	p := int64(1)
	for i, d := range v.Shape {
		if i != axis {
			p *= d.Size
		}
	}
	return p
}

// findLayers lists the layers of g, whose values must have static shapes (after inference at the
// batch and input shapes being timed). Nodes it cannot time on their own are left out.
func findLayers(g *onnx.Graph) []*layer {
	consumers := g.Consumers()
	var out []*layer
	for _, n := range g.Nodes {
		l := weighted(g, n)
		if l == nil {
			continue
		}
		v := n.Outputs[0]
		for {
			next := consumers[v]
			if len(next) != 1 || g.IsOutput(v) || !fusedOps[next[0].OpType] || next[0].Domain != "" ||
				next[0].Input(0) != v || len(next[0].Outputs) == 0 {
				break
			}
			ok := true
			for _, in := range next[0].Inputs[1:] {
				if t := g.Inits[in]; in != "" && (t == nil || t.NumElements() != int64(l.outFull)) {
					ok = false // BN's per-channel parameters are the only inputs a fused op may have
				}
			}
			if !ok {
				break
			}
			l.nodes = append(l.nodes, next[0])
			v = next[0].Outputs[0]
		}
		out = append(out, l)
	}
	return out
}

// weighted recognises a node whose cost is its weight: a Conv (any group) or a Gemm/MatMul with a
// constant 2-D weight, with a static input shape.
func weighted(g *onnx.Graph, n *onnx.Node) *layer {
	if n.Domain != "" || len(n.Outputs) == 0 {
		return nil
	}
	x, w := g.Values[n.Input(0)], g.Inits[n.Input(1)]
	if x == nil || w == nil || !x.Shape.Static() || g.Inits[n.Input(0)] != nil {
		return nil
	}
	l := &layer{nodes: []*onnx.Node{n}, input: x.Shape.Clone(), group: 1}
	switch n.OpType {
	case "Conv":
		if len(w.Dims) < 3 || len(x.Shape) != len(w.Dims) || n.Attrs["kernel_shape"] != nil && len(n.Ints("kernel_shape")) != len(w.Dims)-2 {
			return nil
		}
		l.group = int(n.Int("group", 1))
		l.inFull, l.outFull = int(x.Shape[1].Size), int(w.Dims[0])
		if l.group < 1 || l.inFull%l.group != 0 || l.outFull%l.group != 0 || int(w.Dims[1])*l.group != l.inFull {
			return nil
		}
		if rewrite.BlockDiagonal(l.group, l.inFull, l.outFull) {
			l.diagonal = true
		} else if l.group > 1 && l.group == l.inFull {
			return nil // a channel multiplier: rewrite pins these
		}
	case "Gemm":
		if len(w.Dims) != 2 || len(x.Shape) != 2 || n.Int("transA", 0) != 0 {
			return nil
		}
		l.inFull, l.outFull = int(w.Dims[0]), int(w.Dims[1])
		if n.Int("transB", 0) != 0 {
			l.inFull, l.outFull = l.outFull, l.inFull
		}
	case "MatMul":
		if len(w.Dims) != 2 || len(x.Shape) < 2 {
			return nil
		}
		l.inFull, l.outFull = int(w.Dims[0]), int(w.Dims[1])
	default:
		return nil
	}
	return l
}

// signature identifies a layer's configuration: layers with equal signatures take the same time at
// the same widths (ResNet-50's blocks repeat), so they share one set of measurements.
func (l *layer) signature(g *onnx.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "in%v", l.input)
	for _, n := range l.nodes {
		fmt.Fprintf(&b, "|%s", n.OpType)
		for i, in := range n.Inputs {
			if t := g.Inits[in]; t != nil && in != "" {
				fmt.Fprintf(&b, " w%d%v", i, t.Dims)
			}
		}
		keys := make([]string, 0, len(n.Attrs))
		for k := range n.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			a := n.Attrs[k]
			fmt.Fprintf(&b, " %s=%v/%v/%q/%v/%v", k, a.I, a.F, a.S, a.Ints, a.Floats)
		}
	}
	return b.String()
}

// branch is one width pair to time: in input and out output channels (equal for a block-diagonal conv).
type branch struct{ in, out int }

// part is one layer at one width pair, a copy of it in a cut model.
type part struct {
	l  *layer
	br branch
}

// inputName and outputName name part i's graph input and output in a cut model; suffixed names its
// nodes and their other values. Every name of part i ends in _b<i> (ONNX Runtime names a node it
// rewrites after the node's output, with a suffix of its own), so a profile's nodes are told apart
// by partOf.
func inputName(i int) string             { return suffixed("x", i) }
func outputName(i int) string            { return suffixed("y", i) }
func suffixed(name string, i int) string { return fmt.Sprintf("%s_b%d", name, i) }

// partOf is the part a node of a cut model belongs to, from the last _b<i> in its name.
func partOf(node string) (int, bool) {
	at := strings.LastIndex(node, "_b")
	for at >= 0 {
		j := at + 2
		for j < len(node) && node[j] >= '0' && node[j] <= '9' {
			j++
		}
		if j > at+2 {
			i, err := strconv.Atoi(node[at+2 : j])
			return i, err == nil
		}
		at = strings.LastIndex(node[:at], "_b")
	}
	return 0, false
}

// cut builds one model holding the parts side by side: each reads a graph input of its own, has
// random weights of its widths and an output of its own. ONNX Runtime runs every node of a model
// whichever outputs are fetched, and runs them one after another, so a profiled run times every
// part in the same spell of the machine (ort.ProfileRuns). The model keeps the source's default
// opset and is returned serialised.
func cut(src *onnx.Model, parts []part, seed uint64) ([]byte, error) {
	g := src.Graph
	rng := rand.New(rand.NewPCG(seed, 7))
	random := func(name string, dims []int64, positive bool) *onnx.Tensor {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64()) * 0.1
			if positive {
				data[i] = 1 + float32(rng.Float64())
			}
		}
		return onnx.NewFloatTensor(name, dims, data)
	}
	m := &onnx.Model{Opsets: map[string]int64{"": src.Opset()}}
	cg := &onnx.Graph{Name: "layers", Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}}
	m.Graph = cg
	addInit := func(t *onnx.Tensor) {
		cg.Inits[t.Name] = t
		cg.InitOrder = append(cg.InitOrder, t.Name)
	}
	for bi, p := range parts {
		l, in, out := p.l, p.br.in, p.br.out
		x := inputName(bi)
		shape := l.input.Clone()
		shape[l.channelAxis()] = onnx.D(int64(in))
		cg.Inputs = append(cg.Inputs, x)
		cg.Values[x] = &onnx.Value{Name: x, Type: onnx.Float, Shape: shape}
		prev := x
		for i, n := range l.nodes {
			c := n.Clone()
			c.Source = nil
			c.ParamNames = nil // lifted constants get names of their own in each copy
			c.Name = suffixed(n.Label(), bi)
			c.Inputs[0] = prev
			for j := 1; j < len(c.Inputs); j++ {
				if c.Inputs[j] != "" {
					c.Inputs[j] = suffixed(c.Inputs[j], bi)
				}
			}
			c.Outputs = []string{suffixed(n.Outputs[0], bi)}
			if i == len(l.nodes)-1 {
				c.Outputs[0] = outputName(bi)
			}
			prev = c.Outputs[0]
			switch {
			case i == 0 && n.OpType == "Conv":
				w := g.Inits[n.Input(1)]
				dims := append([]int64{int64(out), int64(in / l.group)}, w.Dims[2:]...)
				if l.diagonal {
					// whole blocks of the original's size: as many groups as blocks kept
					dims[1] = w.Dims[1]
					c.SetInt("group", int64(in)/w.Dims[1])
				}
				addInit(random(c.Inputs[1], dims, false))
				if c.Input(2) != "" {
					addInit(random(c.Inputs[2], []int64{int64(out)}, false))
				}
			case i == 0 && n.OpType == "Gemm":
				dims := []int64{int64(in), int64(out)}
				if n.Int("transB", 0) != 0 {
					dims = []int64{int64(out), int64(in)}
				}
				addInit(random(c.Inputs[1], dims, false))
				if b := n.Input(2); b != "" {
					bt := g.Inits[b]
					if bt == nil {
						return nil, fmt.Errorf("%s: computed bias", n.Label())
					}
					bdims := []int64{int64(out)}
					if len(bt.Dims) == 2 {
						bdims = []int64{bt.Dims[0], int64(out)}
					}
					addInit(random(c.Inputs[2], bdims, false))
				}
			case i == 0:
				addInit(random(c.Inputs[1], []int64{int64(in), int64(out)}, false))
			default:
				// BN's scale, bias, mean and (positive) variance, one per output channel.
				for j, p := range c.Inputs[1:] {
					if p != "" {
						addInit(random(p, []int64{int64(out)}, j == 3))
					}
				}
			}
			cg.Nodes = append(cg.Nodes, c)
		}
		cg.Outputs = append(cg.Outputs, prev)
		cg.Values[prev] = &onnx.Value{Name: prev, Type: onnx.Float}
	}
	mp, err := m.Export()
	if err != nil {
		return nil, err
	}
	return onnx.Encode(mp)
}

package optimizer

import (
	"fmt"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// setConst replaces the constant a node reads at an input with new data, giving the node a
// private copy when other readers share it, so the change reaches that node only.
func setConst(g *onnx.Graph, n *onnx.Node, input int, t *onnx.Tensor) {
	name := n.Inputs[input]
	readers := 0
	for _, o := range g.Nodes {
		for _, in := range o.Inputs {
			if in == name {
				readers++
			}
		}
	}
	if readers > 1 || g.IsOutput(name) {
		base := name + "__" + n.Label()
		name = base
		for i := 2; ; i++ {
			if _, clash := g.Values[name]; !clash {
				break
			}
			name = fmt.Sprintf("%s_%d", base, i)
		}
		g.InitOrder = append(g.InitOrder, name)
		n.Inputs[input] = name
	}
	t.Name = name
	g.Inits[name] = t
	g.Values[name] = &onnx.Value{Name: name, Type: t.Type, Shape: t.Shape()}
}

// forEachBatch feeds a data set through a program, keeping the named values of every batch.
func forEachBatch(p *engine.Program, set *dataset.Set, batch int, keep []string, f func(vals map[string]*engine.Tensor) error) error {
	in := p.Inputs()
	if len(in) != 1 {
		return fmt.Errorf("the model has %d inputs; chanopt feeds data to models with one", len(in))
	}
	per := set.C * set.H * set.W
	for i := 0; i*batch < set.N; i++ {
		imgs := set.Batch(i, batch)
		x := engine.NewTensor([]int{len(imgs) / per, set.C, set.H, set.W}, imgs)
		vals, err := p.RunKeep(map[string]*engine.Tensor{in[0]: x}, keep...)
		if err != nil {
			return err
		}
		if err := f(vals); err != nil {
			return err
		}
	}
	return nil
}

// channelMoments accumulates per-channel mean and variance over N and the spatial axes.
type channelMoments struct {
	sum, sq []float64
	count   float64
}

func (c *channelMoments) add(t *engine.Tensor) {
	if len(t.Shape) < 2 {
		return
	}
	n, ch := t.Shape[0], t.Shape[1]
	inner := 1
	for _, d := range t.Shape[2:] {
		inner *= d
	}
	if c.sum == nil {
		c.sum, c.sq = make([]float64, ch), make([]float64, ch)
	}
	for b := 0; b < n; b++ {
		for k := 0; k < ch; k++ {
			row := t.Data[(b*ch+k)*inner : (b*ch+k+1)*inner]
			var s, q float64
			for _, v := range row {
				s += float64(v)
				q += float64(v) * float64(v)
			}
			c.sum[k] += s
			c.sq[k] += q
		}
	}
	c.count += float64(n * inner)
}

func (c *channelMoments) mean(k int) float64 { return c.sum[k] / c.count }

func (c *channelMoments) variance(k int) float64 {
	m := c.mean(k)
	v := c.sq[k]/c.count - m*m
	if v < 0 {
		v = 0
	}
	return v
}

// HasBatchNorm reports whether the model keeps any BatchNormalization node (BN-kept models are
// repaired by recalibration, BN-folded ones by bias correction).
func HasBatchNorm(m *onnx.Model) bool {
	for _, n := range m.Graph.Nodes {
		if n.OpType == "BatchNormalization" {
			return true
		}
	}
	return false
}

// RecalibrateBN sets the running mean and variance of every inference-mode BatchNormalization of
// the model to the statistics its input has on the data, as BN recalibration after pruning does.
// It reports how many BN nodes it updated.
func RecalibrateBN(m *onnx.Model, set *dataset.Set, batch, threads int) (int, error) {
	g := m.Graph
	var bns []*onnx.Node
	var keep []string
	for _, n := range g.Nodes {
		if n.OpType != "BatchNormalization" || len(n.Inputs) < 5 || len(n.Outputs) > 1 || n.Int("training_mode", 0) != 0 {
			continue
		}
		if _, ok := g.Inits[n.Inputs[3]]; !ok {
			continue
		}
		if _, ok := g.Inits[n.Inputs[4]]; !ok {
			continue
		}
		bns = append(bns, n)
		keep = append(keep, n.Inputs[0])
	}
	if len(bns) == 0 {
		return 0, nil
	}
	// One BN at a time, in graph order: each one's input depends on the BNs before it, whose new
	// statistics must already be in place (a single pass would measure later layers on inputs
	// normalised with stale statistics).
	for i, n := range bns {
		ms, err := momentsOf(m, keep[i:i+1], set, batch, threads)
		if err != nil {
			return i, err
		}
		mt, vt := g.Inits[n.Inputs[3]], g.Inits[n.Inputs[4]]
		c := len(mt.Floats)
		if ms[0].sum == nil || len(ms[0].sum) != c {
			continue
		}
		mean := &onnx.Tensor{Type: mt.Type, Dims: append([]int64(nil), mt.Dims...), Floats: make([]float32, c)}
		variance := &onnx.Tensor{Type: vt.Type, Dims: append([]int64(nil), vt.Dims...), Floats: make([]float32, c)}
		for k := 0; k < c; k++ {
			mean.Floats[k] = float32(ms[0].mean(k))
			variance.Floats[k] = float32(ms[0].variance(k))
		}
		setConst(g, n, 3, mean)
		setConst(g, n, 4, variance)
	}
	return len(bns), nil
}

// CorrectBias shifts the bias of every Conv and Gemm of the student whose inputs were cut, so the
// mean of each output channel on the data matches the teacher's channel it corresponds to (the
// repair for models whose BN torch folded into the convs). corr maps node labels to what the student
// keeps of the teacher's node.
func CorrectBias(teacher, student *onnx.Model, corr map[string]rewrite.Correspondence, set *dataset.Set, batch, threads int) (int, error) {
	sg := student.Graph
	var nodes []*onnx.Node
	var keep []string
	for _, n := range sg.Nodes {
		c, ok := corr[n.Label()]
		if !ok || c.In == nil || (n.OpType != "Conv" && n.OpType != "Gemm") || len(n.Inputs) < 3 {
			continue
		}
		if _, ok := sg.Inits[n.Inputs[2]]; !ok {
			continue
		}
		nodes = append(nodes, n)
		keep = append(keep, n.Outputs[0])
	}
	if len(nodes) == 0 {
		return 0, nil
	}
	tm, err := momentsOf(teacher, keep, set, batch, threads)
	if err != nil {
		return 0, err
	}
	// One layer at a time, in graph order: a correction changes the inputs of every later layer, so
	// each layer is measured after the ones before it were corrected.
	for i, n := range nodes {
		sm, err := momentsOf(student, keep[i:i+1], set, batch, threads)
		if err != nil {
			return i, err
		}
		b := sg.Inits[n.Inputs[2]]
		nb := b.Clone()
		nb.Source = nil
		out := corr[n.Label()].Out
		for j := range nb.Floats {
			tj := j
			if out != nil {
				tj = out[j]
			}
			if tj < len(tm[i].sum) && j < len(sm[0].sum) {
				nb.Floats[j] += float32(tm[i].mean(tj) - sm[0].mean(j))
			}
		}
		setConst(sg, n, 2, nb)
	}
	return len(nodes), nil
}

func momentsOf(m *onnx.Model, keep []string, set *dataset.Set, batch, threads int) ([]channelMoments, error) {
	batch = memBatch(m, keep, batch)
	p, err := engine.Compile(prefixModel(m, keep...), engine.Options{Threads: threads, NoFusion: true})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	ms := make([]channelMoments, len(keep))
	err = forEachBatch(p, set, batch, keep, func(vals map[string]*engine.Tensor) error {
		for i, k := range keep {
			ms[i].add(vals[k])
		}
		return nil
	})
	return ms, err
}

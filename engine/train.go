package engine

import (
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/chanopt/chanopt/onnx"
)

// TrainOptions controls a Trainer.
type TrainOptions struct {
	// Threads is the number of goroutines a step uses; 0 means runtime.NumCPU().
	Threads int
	// Trainable says whether input `input` of node n is a parameter, when that input is a float
	// initializer. nil means DefaultTrainable. An initializer read by several nodes is one
	// parameter; it is trainable when any of its readers says so.
	Trainable func(n *onnx.Node, input int) bool
	// BNMode is "eval" (the default: BatchNormalization uses its running statistics, which stay
	// frozen) or "train" (batch statistics; Forward updates the running statistics with the node's
	// momentum, and WriteBack writes them).
	BNMode string
	// SkipInputGrad leaves out the gradient with respect to the graph input (InputGrad returns
	// nil), which saves the first layer's data gradient when only parameters are trained.
	SkipInputGrad bool
}

// DefaultTrainable marks the weights and biases of Conv, ConvTranspose, Gemm and MatMul, the
// scale and bias of BatchNormalization and the slope of PRelu.
func DefaultTrainable(n *onnx.Node, input int) bool {
	switch n.OpType {
	case "Conv", "ConvTranspose":
		return input == 1 || input == 2
	case "Gemm":
		return input <= 2
	case "MatMul":
		return input <= 1
	case "BatchNormalization":
		return input == 1 || input == 2
	case "PRelu":
		return input == 1
	}
	return false
}

// Param is one trainable initializer: its current values and the gradient accumulated since the
// last ZeroGrad. Optimizers update Value in place.
type Param struct {
	Name  string
	Shape []int
	Value []float32
	Grad  []float32
}

// Trainer runs a model forward while recording what the backward pass needs, then propagates
// gradients back to the parameters and the input. Forward and Backward reuse their buffers: after
// the first step at a given input shape they allocate nothing (for the ops of CNNs). A Trainer
// is not safe for concurrent use.
//
// The graph is compiled by compileGraph as a Program's is, but unfused, every node on the inference
// engine's forward op except BatchNormalization (trainBN, which has the train mode). Parameters are
// not constants of the ops: convs and Gemms pack their weights on every run, so optimizer updates
// to Param.Value take effect at the next Forward. The tape is simply every value of the graph, each
// in its own buffer for the input shape (views share their input's). It is made by the Trainer's
// own makePlan, not the graph's: that one drops steps whose inputs are all initializers (parameters
// change between steps), hands a buffer to a new value once the old one has been read for the last
// time (the backward reads every value again), and runs the graph twice the first time (once to
// learn the shapes, once planned), which would apply a train-mode BatchNormalization's
// running-statistics update twice. Gradients live in slots, one per value that a parameter or the
// input influences (views share their input's slot; a parameter's slot is its Grad); a backward
// either writes an input's slot or adds to it when another consumer already wrote it, so nothing is
// cleared between steps. Each op's backward is in a grad_*.go file.
type Trainer struct {
	opt     TrainOptions
	threads int
	pool    *workers
	// g is the model compiled unfused by compileGraph, parameters marked variable: its consts hold
	// every initializer's value, parameters included (a Param's Value is its const's data).
	g       *graph
	paramOf []int // by value id: index in params, or -1
	params  []*Param
	// stats are the BatchNormalization running statistics train mode updates: each node updates
	// a private copy (torch merges equal initializers, so nodes may share one).
	stats    []bnStat
	nodes    []*tnode // by step
	needGrad []bool
	plans    map[string]*tplan
	last     *tplan // the plan of the last Forward
	closed   bool
}

// tnode is one step of the trainable graph with its backward.
type tnode struct {
	*step
	grad gradOp // nil when gradients never flow through the node
	diff []bool // per input: the node passes gradient to it
}

// gradArgs is what a node's backward reads and writes: its forward inputs and outputs, the
// gradients of its outputs (nil where none reached them: zero), and the gradient buffers of the
// inputs that need one (nil otherwise). acc[i] says din[i] already holds a gradient to add to;
// otherwise the op overwrites it.
type gradArgs struct {
	in, out   []*Tensor
	dout, din []*Tensor
	acc       []bool
}

// gradOp is the backward of an op.
type gradOp interface {
	backward(c *ctx, a *gradArgs) error
}

// gradScratcher reports the ctx scratch floats a backward needs (per worker, shared).
type gradScratcher interface {
	gradScratch(in, out []*Tensor, threads int) (perWorker, shared int)
}

// gradPreparer is called once per input shape, after the first forward at that shape.
type gradPreparer interface {
	prepare(c *ctx, in, out []*Tensor) error
}

// NewTrainer builds a trainable graph for the model. It fails naming the node when a node that
// gradients must pass through has no backward.
func NewTrainer(m *onnx.Model, opt TrainOptions) (_ *Trainer, err error) {
	defer recoverInto(&err)
	if m == nil || m.Graph == nil {
		return nil, errors.New("engine: no model")
	}
	switch opt.BNMode {
	case "", "eval", "train":
	default:
		return nil, fmt.Errorf("engine: BNMode %q: want \"eval\" or \"train\"", opt.BNMode)
	}
	trainable := opt.Trainable
	if trainable == nil {
		trainable = DefaultTrainable
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	mg := m.Graph
	// parameters: float initializers some reader marks trainable
	isParam := map[string]bool{}
	for _, n := range mg.Nodes {
		for i, in := range n.Inputs {
			if init := mg.Inits[in]; init != nil && init.Floats != nil && init.Type.IsFloat() && trainable(n, i) {
				isParam[in] = true
			}
		}
	}
	if len(mg.Inputs) == 0 {
		return nil, errors.New("engine: the model has no input")
	}
	trainBNMode := opt.BNMode == "train"
	g, err := compileGraph(m, compileOptions{noFusion: true, variable: isParam,
		buildNode: func(b *builder) (op, bool, error) {
			if b.n.OpType != "BatchNormalization" {
				return nil, false, nil
			}
			bn, err := newTrainBN(b, trainBNMode)
			return bn, true, err
		}})
	if err != nil {
		return nil, err
	}
	if len(g.outIDs) == 0 {
		return nil, errors.New("engine: the model has no output")
	}
	t := &Trainer{opt: opt, threads: threads, g: g, plans: map[string]*tplan{}}
	for _, st := range g.steps {
		tn := &tnode{step: st}
		if bn, ok := tn.op.(*trainBN); ok && bn.train {
			for j := 3; j < min(5, len(tn.in)); j++ {
				i := tn.in[j]
				if i < 0 || g.consts[i] == nil || isParam[g.names[i]] {
					continue
				}
				private := g.valueID(fmt.Sprintf("%s\x00%s", g.names[i], tn.label))
				src := g.consts[i]
				g.consts[private] = &Tensor{Shape: append([]int{}, src.Shape...), Data: newFloats(len(src.Data))}
				copy(g.consts[private].Data, src.Data)
				tn.in[j] = private
				t.stats = append(t.stats, bnStat{value: private, init: tn.node.Inputs[j], node: tn.label, input: j})
			}
		}
		t.nodes = append(t.nodes, tn)
	}
	// Params in id order, which is the order of the initializers (InitOrder, then by name).
	t.paramOf = make([]int, len(g.names))
	for v, c := range g.consts {
		t.paramOf[v] = -1
		if c != nil && isParam[g.names[v]] {
			t.paramOf[v] = len(t.params)
			t.params = append(t.params, &Param{Name: g.names[v], Shape: append([]int{}, c.Shape...), Value: c.Data,
				Grad: make([]float32, len(c.Data))})
		}
	}
	// which values gradients reach: parameters and the input, then forward through the nodes
	t.needGrad = make([]bool, len(g.names))
	for v, p := range t.paramOf {
		t.needGrad[v] = p >= 0
	}
	if !opt.SkipInputGrad {
		for _, i := range t.g.inIDs {
			t.needGrad[i] = true
		}
	}
	opset := m.Opset()
	for _, tn := range t.nodes {
		any := false
		for _, i := range tn.in {
			any = any || (i >= 0 && t.needGrad[i])
		}
		if !any {
			continue
		}
		grad, diff, stop, err := gradFor(tn.node, tn.op, opset)
		if err != nil {
			return nil, fmt.Errorf("engine: node %s (%s): %w", tn.label, tn.opType, err)
		}
		if stop {
			continue
		}
		if grad == nil {
			return nil, fmt.Errorf("engine: node %s: op %s has no backward, and gradients must pass through it", tn.label, tn.opType)
		}
		tn.diff = make([]bool, len(tn.in))
		flows := false
		for i, v := range tn.in {
			if v >= 0 && t.needGrad[v] && i < len(diff) && diff[i] {
				tn.diff[i], flows = true, true
			}
		}
		if !flows {
			continue
		}
		tn.grad = grad
		for _, o := range tn.out {
			if o >= 0 {
				t.needGrad[o] = true
			}
		}
	}
	t.pool = newWorkers(threads)
	runtime.AddCleanup(t, func(w *workers) { w.close() }, t.pool)
	return t, nil
}

// Close stops the Trainer's worker goroutines. The Trainer must not be used afterwards.
func (t *Trainer) Close() {
	if !t.closed {
		t.closed = true
		t.pool.close()
	}
}

// Params lists the trainable parameters in the order of the model's initializers (InitOrder, then
// by name for those missing from it). The slice
// belongs to the Trainer (do not modify it); the Params' values may be changed in place.
func (t *Trainer) Params() []*Param { return t.params }

// ZeroGrad clears the parameters' gradients.
func (t *Trainer) ZeroGrad() {
	for _, p := range t.params {
		clear(p.Grad)
	}
}

// Forward runs the model on x (the graph's only input) and records the tape for Backward. It
// returns the first graph output, owned by the Trainer: valid until the next Forward, not to be
// modified.
func (t *Trainer) Forward(x *Tensor) (_ *Tensor, err error) {
	defer recoverInto(&err)
	pl, err := t.forward(x)
	if err != nil {
		return nil, err
	}
	return pl.vals[t.g.outIDs[0]], nil
}

// ForwardKeep is Forward that returns the graph outputs and the named intermediate values by
// name (owned by the Trainer, valid until the next Forward). BackwardFrom takes gradients for
// any of them.
func (t *Trainer) ForwardKeep(x *Tensor, names ...string) (_ map[string]*Tensor, err error) {
	defer recoverInto(&err)
	for _, n := range names {
		if _, ok := t.g.ids[n]; !ok {
			return nil, fmt.Errorf("engine: the model has no value named %q", n)
		}
	}
	pl, err := t.forward(x)
	if err != nil {
		return nil, err
	}
	res := make(map[string]*Tensor, len(t.g.outIDs)+len(names))
	for _, o := range t.g.outIDs {
		res[t.g.names[o]] = pl.vals[o]
	}
	for _, n := range names {
		v := pl.vals[t.g.ids[n]]
		if v == nil {
			return nil, fmt.Errorf("engine: value %q is not computed", n)
		}
		res[n] = v
	}
	return res, nil
}

// Backward propagates gradOut, the gradient of the loss with respect to the first graph output
// of the last Forward, adding the parameters' gradients to Param.Grad.
func (t *Trainer) Backward(gradOut *Tensor) (err error) {
	defer recoverInto(&err)
	pl, err := t.startBackward()
	if err != nil {
		return err
	}
	if err := t.seed(pl, t.g.outIDs[0], gradOut); err != nil {
		return err
	}
	return t.backward(pl)
}

// BackwardFrom is Backward with gradients given for several values of the last Forward (graph
// outputs or intermediate values, by name); contributions add up.
func (t *Trainer) BackwardFrom(grads map[string]*Tensor) (err error) {
	defer recoverInto(&err)
	pl, err := t.startBackward()
	if err != nil {
		return err
	}
	for name := range grads {
		v, ok := t.g.ids[name]
		if !ok {
			return fmt.Errorf("engine: the model has no value named %q", name)
		}
		if s := pl.slotOf[v]; s >= 0 && pl.sharedGrads && pl.slots[s].last < len(pl.steps) {
			// An intermediate value seeded before the backward: its slot may share storage
			// with a slot that later steps write first.
			t.bindGradSlots(pl, false)
		}
	}
	for name, g := range grads {
		v := t.g.ids[name]
		if err := t.seed(pl, v, g); err != nil {
			return err
		}
	}
	return t.backward(pl)
}

// InputGrad returns the gradient of the last Backward with respect to the graph input (zeros
// when no gradient reached it), owned by the Trainer; nil with SkipInputGrad.
func (t *Trainer) InputGrad() *Tensor {
	pl := t.last
	if pl == nil || t.opt.SkipInputGrad {
		return nil
	}
	v := t.g.inIDs[0]
	s := pl.slotOf[v]
	if s < 0 {
		return nil
	}
	if !pl.slots[s].set {
		clear(pl.grads[v].Data)
		pl.slots[s].set = true
	}
	return pl.grads[v]
}

// WriteBack stores the parameters' current values (and, in train BN mode, the running
// statistics) into m's initializers of the same names, as new onnx.Tensor values.
func (t *Trainer) WriteBack(m *onnx.Model) {
	write := func(name string, data []float32) {
		old := m.Graph.Inits[name]
		if old == nil {
			return
		}
		n := int(old.NumElements())
		if n != len(data) {
			return
		}
		m.Graph.Inits[name] = &onnx.Tensor{Name: old.Name, Type: old.Type, Dims: append([]int64(nil), old.Dims...),
			Floats: append([]float32(nil), data...)}
	}
	for _, p := range t.params {
		write(p.Name, p.Value)
	}
	for _, st := range t.stats {
		readers := 0
		for _, n := range m.Graph.Nodes {
			for _, in := range n.Inputs {
				if in == st.init {
					readers++
				}
			}
		}
		if readers <= 1 {
			write(st.init, t.g.consts[st.value].Data)
			continue
		}
		// shared with other nodes: give this node its own initializer
		old := m.Graph.Inits[st.init]
		if old == nil {
			continue
		}
		for _, n := range m.Graph.Nodes {
			if n.Label() != st.node || st.input >= len(n.Inputs) || n.Inputs[st.input] != st.init {
				continue
			}
			name := st.init + "_" + st.node
			for k := 2; m.Graph.Inits[name] != nil || m.Graph.Values[name] != nil; k++ {
				name = fmt.Sprintf("%s_%s_%d", st.init, st.node, k)
			}
			m.Graph.Inits[name] = &onnx.Tensor{Name: name, Type: old.Type, Dims: append([]int64(nil), old.Dims...),
				Floats: append([]float32(nil), t.g.consts[st.value].Data...)}
			m.Graph.InitOrder = append(m.Graph.InitOrder, name)
			if v := m.Graph.Values[st.init]; v != nil {
				cv := *v
				cv.Name = name
				m.Graph.Values[name] = &cv
			}
			n.Inputs[st.input] = name
			break
		}
	}
}

// bnStat is a running statistic a train-mode BatchNormalization node updates.
type bnStat struct {
	value int    // the trainer's private copy
	init  string // the initializer it came from
	node  string // the node's label
	input int    // 3 (mean) or 4 (variance)
}

// tplan is how the trainer runs for one input shape: every value bound to its own storage (the
// tape), gradient slots, scratch.
type tplan struct {
	inShape []int
	inInt   bool
	vals    []*Tensor // by value id
	input   *Tensor
	steps   []tstep
	slots   []gslot
	slotOf  []int     // by value id: gradient slot, or -1
	grads   []*Tensor // by value id: the gradient, a view of its slot
	// sharedGrads says slots whose backward lifetimes do not overlap share storage (see
	// bindGradSlots).
	sharedGrads bool
	ctx         ctx
}

type tstep struct {
	n       *tnode
	in, out []*Tensor
	check   bool // reads int values computed at run time: re-infer shapes
	ga      gradArgs
	inSlot  []int
	outSlot []int
	dup     bool // two inputs share a gradient slot (x·x, or a value and its view)
}

// gslot is a gradient buffer shared by a value and its views.
type gslot struct {
	buf   []float32
	size  int // the value's elements (buf may be a prefix of storage other slots reuse)
	set   bool
	param bool // a parameter's Grad: always accumulated into
	// first and last are the lowest and highest steps whose backward reads or writes the slot;
	// a graph output's last is past the last step (seeded before the backward), the input's
	// first before the first (read after it).
	first, last int
}

func (t *Trainer) forward(x *Tensor) (*tplan, error) {
	if t.closed {
		return nil, errors.New("engine: trainer is closed")
	}
	if len(t.g.inIDs) != 1 {
		return nil, fmt.Errorf("engine: the model has %d inputs; Forward takes one", len(t.g.inIDs))
	}
	if x == nil {
		return nil, errors.New("engine: nil input")
	}
	if n := numel(x.Shape); x.IsInt() && len(x.Ints) < n || !x.IsInt() && len(x.Data) < n {
		return nil, fmt.Errorf("engine: input of shape %v has too few values", x.Shape)
	}
	pl := t.last
	if pl == nil || pl.inInt != x.IsInt() || !slices.Equal(pl.inShape, x.Shape) {
		key := planKey([]*Tensor{x}, nil)
		pl = t.plans[key]
		if pl == nil {
			var err error
			if pl, err = t.makePlan(x); err != nil {
				return nil, err
			}
			t.plans[key] = pl
			t.last = pl
			return pl, nil // makePlan ran the forward
		}
	}
	t.last = pl
	if x.IsInt() {
		copy(pl.input.Ints, x.Ints)
	} else {
		copy(pl.input.Data, x.Data)
	}
	for i := range pl.steps {
		s := &pl.steps[i]
		if s.check {
			specs, err := s.n.op.infer(s.in)
			if err != nil {
				return nil, s.n.errorf(err)
			}
			for j, o := range s.out {
				if o != nil && j < len(specs) && !slices.Equal(o.Shape, specs[j].shape) {
					// shapes follow data: plan again (rare: exported CNNs fold these chains)
					delete(t.plans, planKey([]*Tensor{x}, nil))
					np, err := t.makePlan(x)
					if err != nil {
						return nil, err
					}
					t.last = np
					return np, nil
				}
			}
		}
		if _, ok := s.n.op.(viewOp); ok && !s.check {
			continue
		}
		if err := s.n.op.run(&pl.ctx, s.in, s.out); err != nil {
			return nil, s.n.errorf(err)
		}
	}
	return pl, nil
}

// makePlan runs the forward once allocating every value, then prepares the backward.
func (t *Trainer) makePlan(x *Tensor) (*tplan, error) {
	nv := len(t.g.names)
	pl := &tplan{inShape: append([]int{}, x.Shape...), inInt: x.IsInt(), vals: make([]*Tensor, nv),
		ctx: ctx{pool: t.pool, threads: t.threads}}
	for v, c := range t.g.consts {
		if c != nil {
			pl.vals[v] = c
		}
	}
	pl.input = copyIn(x)
	pl.vals[t.g.inIDs[0]] = pl.input
	per, shared := 0, 0
	grow := func(p, s int) {
		if p > per {
			per = p
			pl.ctx.scratch = make([][]float32, t.threads)
			for w := range pl.ctx.scratch {
				pl.ctx.scratch[w] = newFloats(per)
			}
		}
		if s > shared {
			shared = s
			pl.ctx.shared = newFloats(shared)
		}
	}
	grow(0, 0)
	constIDs := make([]bool, nv)
	for v, c := range t.g.consts {
		constIDs[v] = c != nil
	}
	for _, tn := range t.nodes {
		s := tstep{n: tn, in: make([]*Tensor, len(tn.in)), out: make([]*Tensor, len(tn.out))}
		for j, i := range tn.in {
			if i >= 0 {
				s.in[j] = pl.vals[i]
				if s.in[j] == nil {
					return nil, tn.errorf(fmt.Errorf("input %q is not available", t.g.names[i]))
				}
				if s.in[j].IsInt() && !constIDs[i] {
					s.check = true
				}
			}
		}
		specs, err := tn.op.infer(s.in)
		if err != nil {
			return nil, tn.errorf(err)
		}
		_, isView := tn.op.(viewOp)
		for j, o := range tn.out {
			if j >= len(specs) {
				break
			}
			var v *Tensor
			if j == 0 && isView {
				src := s.in[0]
				v = &Tensor{Shape: specs[0].shape}
				if src.IsInt() {
					v.Ints = src.Ints[:numel(v.Shape)]
				} else {
					v.Data = src.Data[:numel(v.Shape)]
				}
			} else {
				v = allocFor(specs[j])
			}
			s.out[j] = v
			if o >= 0 {
				pl.vals[o] = v
			}
		}
		if so, ok := tn.op.(scratchOp); ok {
			grow(so.scratch(s.in, t.threads))
		}
		if !isView || s.check {
			if err := tn.op.run(&pl.ctx, s.in, s.out); err != nil {
				return nil, tn.errorf(err)
			}
		}
		pl.steps = append(pl.steps, s)
	}
	// gradient slots: views share their input's
	pl.slotOf = make([]int, nv)
	pl.grads = make([]*Tensor, nv)
	for i := range pl.slotOf {
		pl.slotOf[i] = -1
	}
	newSlot := func(v int) {
		val := pl.vals[v]
		if val == nil || val.IsInt() {
			return
		}
		g := gslot{size: val.Len()}
		if p := t.paramOf[v]; p >= 0 {
			g.buf, g.param = t.params[p].Grad, true
		}
		pl.slotOf[v] = len(pl.slots)
		pl.slots = append(pl.slots, g)
	}
	for v := range t.g.names {
		if t.needGrad[v] && (constIDs[v] || v == t.g.inIDs[0]) {
			newSlot(v)
		}
	}
	for _, s := range pl.steps {
		tn := s.n
		if tn.grad == nil {
			continue
		}
		_, isView := tn.op.(viewOp)
		for j, o := range tn.out {
			if o < 0 || !t.needGrad[o] || pl.vals[o] == nil || pl.vals[o].IsInt() {
				continue
			}
			if j == 0 && isView && tn.in[0] >= 0 && pl.slotOf[tn.in[0]] >= 0 {
				pl.slotOf[o] = pl.slotOf[tn.in[0]]
				continue
			}
			newSlot(o)
		}
	}
	t.bindGradSlots(pl, true)
	// backward arguments and scratch
	for i := range pl.steps {
		s := &pl.steps[i]
		tn := s.n
		if tn.grad == nil {
			continue
		}
		s.ga = gradArgs{in: s.in, out: s.out, dout: make([]*Tensor, len(tn.out)), din: make([]*Tensor, len(tn.in)),
			acc: make([]bool, len(tn.in))}
		s.inSlot, s.outSlot = make([]int, len(tn.in)), make([]int, len(tn.out))
		for j, v := range tn.in {
			s.inSlot[j] = -1
			if v >= 0 && tn.diff[j] && pl.slotOf[v] >= 0 {
				s.inSlot[j] = pl.slotOf[v]
				s.ga.din[j] = pl.grads[v]
			}
		}
		for j, v := range tn.out {
			s.outSlot[j] = -1
			if v >= 0 && pl.slotOf[v] >= 0 {
				s.outSlot[j] = pl.slotOf[v]
			}
		}
		for j, a := range s.inSlot {
			for _, b := range s.inSlot[:j] {
				s.dup = s.dup || a >= 0 && a == b
			}
		}
		if gp, ok := tn.grad.(gradPreparer); ok {
			if err := gp.prepare(&pl.ctx, s.in, s.out); err != nil {
				return nil, tn.errorf(err)
			}
		}
		if gs, ok := tn.grad.(gradScratcher); ok {
			grow(gs.gradScratch(s.in, s.out, t.threads))
		}
	}
	return pl, nil
}

func (t *Trainer) startBackward() (*tplan, error) {
	if t.closed {
		return nil, errors.New("engine: trainer is closed")
	}
	pl := t.last
	if pl == nil {
		return nil, errors.New("engine: Backward before Forward")
	}
	for i := range pl.slots {
		pl.slots[i].set = pl.slots[i].param
	}
	return pl, nil
}

// seed adds g to the gradient of value v.
func (t *Trainer) seed(pl *tplan, v int, g *Tensor) error {
	val := pl.vals[v]
	if g == nil || val == nil {
		return fmt.Errorf("engine: no gradient or value for %q", t.g.names[v])
	}
	if !slices.Equal(g.Shape, val.Shape) || g.IsInt() || len(g.Data) < val.Len() {
		return fmt.Errorf("engine: gradient for %q has shape %v, the value has %v", t.g.names[v], g.Shape, val.Shape)
	}
	s := pl.slotOf[v]
	if s < 0 {
		return nil // nothing trainable depends on it
	}
	if pl.sharedGrads && pl.slots[s].last < len(pl.steps) {
		t.bindGradSlots(pl, false) // see BackwardFrom
	}
	sl := &pl.slots[s]
	dst := pl.grads[v].Data
	if sl.set {
		for i, x := range g.Data[:len(dst)] {
			dst[i] += x
		}
	} else {
		copy(dst, g.Data)
		sl.set = true
	}
	return nil
}

func (t *Trainer) backward(pl *tplan) error {
	for i := len(pl.steps) - 1; i >= 0; i-- {
		s := &pl.steps[i]
		if s.n.grad == nil {
			continue
		}
		any := false
		for j, sl := range s.outSlot {
			if sl >= 0 && pl.slots[sl].set {
				s.ga.dout[j] = pl.grads[s.n.out[j]]
				any = true
			} else {
				s.ga.dout[j] = nil
			}
		}
		if !any {
			continue
		}
		if s.dup {
			// ops write each input's gradient separately: start shared slots at zero and add
			for _, sl := range s.inSlot {
				if sl >= 0 && !pl.slots[sl].set {
					clear(pl.slots[sl].buf)
					pl.slots[sl].set = true
				}
			}
		}
		for j, sl := range s.inSlot {
			if sl >= 0 {
				s.ga.acc[j] = pl.slots[sl].set
			}
		}
		if err := s.n.grad.backward(&pl.ctx, &s.ga); err != nil {
			return s.n.errorf(err)
		}
		for _, sl := range s.inSlot {
			if sl >= 0 {
				pl.slots[sl].set = true
			}
		}
	}
	return nil
}

package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/chanopt/chanopt/onnx"
)

// Options controls compilation.
type Options struct {
	// Threads is the number of goroutines a run uses; 0 means runtime.NumCPU().
	Threads int
	// NoFusion keeps every node separate (no BatchNormalization folding, no fused activations), so
	// every intermediate value of the model can be read with RunKeep without recompiling.
	NoFusion bool
}

// Program is a compiled model. Its run methods may be called from several goroutines; runs are
// serialised. Close releases its worker goroutines.
type Program struct {
	mu      sync.Mutex
	model   *onnx.Model
	opt     Options
	threads int
	pool    *workers
	inputs  []string
	outputs []string
	// graphs holds the compiled graph per set of values kept out of fusion ("" = the default).
	graphs map[string]*graph
	closed bool
}

// Compile checks that every node of the model can run and prepares it: constants are converted,
// Conv→BatchNormalization→Relu/Clip chains (and residual Adds) are fused, weights are packed.
// The model must not be changed while the Program is in use.
func Compile(m *onnx.Model, opt Options) (_ *Program, err error) {
	defer recoverInto(&err)
	if m == nil || m.Graph == nil {
		return nil, errors.New("engine: no model")
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &Program{model: m, opt: opt, threads: threads, pool: newWorkers(threads),
		inputs: append([]string(nil), m.Graph.Inputs...), outputs: append([]string(nil), m.Graph.Outputs...),
		graphs: map[string]*graph{}}
	g, err := compileGraph(m, compileOptions{noFusion: opt.NoFusion})
	if err != nil {
		return nil, err
	}
	p.graphs[""] = g
	runtime.AddCleanup(p, func(w *workers) { w.close() }, p.pool)
	return p, nil
}

// Close stops the Program's worker goroutines. The Program must not be used afterwards.
func (p *Program) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.pool.close()
	}
}

// Inputs lists the graph input names in order.
func (p *Program) Inputs() []string { return append([]string(nil), p.inputs...) }

// Outputs lists the graph output names in order.
func (p *Program) Outputs() []string { return append([]string(nil), p.outputs...) }

// Threads is the number of goroutines runs use.
func (p *Program) Threads() int { return p.threads }

// RunSlice runs the model on inputs given in graph input order and returns the outputs in graph
// output order. The returned tensors (and the slice) belong to the Program: they stay valid until
// the next run and must not be modified; Clone what you keep. After the first run of a given set
// of input shapes, RunSlice allocates nothing.
func (p *Program) RunSlice(inputs ...*Tensor) (outs []*Tensor, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer recoverInto(&err)
	if p.closed {
		return nil, errors.New("engine: program is closed")
	}
	if len(inputs) != len(p.inputs) {
		return nil, fmt.Errorf("engine: %d inputs given, the model takes %d (%s)", len(inputs), len(p.inputs), strings.Join(p.inputs, ", "))
	}
	return p.graphs[""].exec(p, inputs, nil)
}

// Run runs the model on named inputs and returns every graph output by name, as copies the caller
// owns.
func (p *Program) Run(inputs map[string]*Tensor) (map[string]*Tensor, error) {
	return p.RunKeep(inputs)
}

// RunKeep is Run that also returns the named intermediate values (any value of the graph: node
// outputs, inputs, initializers). Values that fusion removed are computed by a variant of the
// program compiled without those fusions on first use.
func (p *Program) RunKeep(inputs map[string]*Tensor, keep ...string) (res map[string]*Tensor, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer recoverInto(&err)
	if p.closed {
		return nil, errors.New("engine: program is closed")
	}
	ordered := make([]*Tensor, len(p.inputs))
	for i, name := range p.inputs {
		t, ok := inputs[name]
		if !ok || t == nil {
			return nil, fmt.Errorf("engine: input %q is missing", name)
		}
		ordered[i] = t
	}
	for name := range inputs {
		if !p.model.Graph.IsInput(name) {
			return nil, fmt.Errorf("engine: %q is not an input of the model (inputs: %s)", name, strings.Join(p.inputs, ", "))
		}
	}
	g := p.graphs[""]
	var unfused []string
	for _, k := range keep {
		if g.fused[k] {
			unfused = append(unfused, k)
			continue
		}
		if _, ok := g.ids[k]; !ok {
			return nil, fmt.Errorf("engine: the model has no value named %q", k)
		}
	}
	if len(unfused) > 0 {
		sort.Strings(unfused)
		key := strings.Join(unfused, "\x00")
		if v, ok := p.graphs[key]; ok {
			g = v
		} else {
			set := map[string]bool{}
			for _, k := range unfused {
				set[k] = true
			}
			var err error
			if g, err = compileGraph(p.model, compileOptions{keepUnfused: set, noFusion: p.opt.NoFusion}); err != nil {
				return nil, err
			}
			p.graphs[key] = g
		}
	}
	keepIDs := make([]int, len(keep))
	for i, k := range keep {
		keepIDs[i] = g.ids[k]
	}
	outs, err := g.exec(p, ordered, keepIDs)
	if err != nil {
		return nil, err
	}
	res = make(map[string]*Tensor, len(p.outputs)+len(keep))
	for i, name := range p.outputs {
		res[name] = outs[i].Clone()
	}
	for i, k := range keep {
		res[k] = outs[len(p.outputs)+i].Clone()
	}
	return res, nil
}

// recoverInto turns a panic (a malformed model the checks missed, or a bug) into an error.
func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("engine: internal error: %v", r)
	}
}

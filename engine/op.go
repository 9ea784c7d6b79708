package engine

// op is one compiled node: it computes its outputs' shapes from its inputs, then their values.
// Kernels below op are functions over plain slices with explicit shapes, so a tape for the
// backward pass can record (op, inputs, outputs) and call their gradients.
type op interface {
	// infer returns the outputs' shapes and kinds. It may read the values of int inputs.
	infer(in []*Tensor) ([]spec, error)
	// run computes the outputs, which are already shaped and backed by storage of their length.
	// Absent optional inputs are nil.
	run(c *ctx, in, out []*Tensor) error
}

// spec is an output's shape and kind.
type spec struct {
	shape []int
	isInt bool
}

func floatSpec(shape []int) []spec { return []spec{{shape: shape}} }

// viewOp marks ops whose first output is its first input with another shape (Reshape, Flatten,
// Squeeze, Unsqueeze, Identity, Dropout): the planner shares the storage and run is not called.
type viewOp interface{ isView() }

// inPlaceOp marks ops whose first output may share the storage of their first input when that
// input is not read afterwards (element-wise ops; the kernel reads each element before writing it).
type inPlaceOp interface{ inPlace() bool }

// scratchOp reports the scratch floats an op needs, per worker and shared, for these inputs.
type scratchOp interface {
	scratch(in []*Tensor, threads int) (perWorker, shared int)
}

// ctx is what a running op may use.
type ctx struct {
	pool    *workers
	threads int
	scratch [][]float32 // per worker
	shared  []float32
}

// parallel runs t's count items on the workers.
func (c *ctx) parallel(count int, t task) { c.pool.run(count, t) }

// chunks picks how many items to cut work of the given size (in multiply-adds or element
// touches) into: one per thread when big enough, fewer when small, so tiny layers stay serial.
func (c *ctx) chunks(items int, work int) int {
	const grain = 1 << 15
	n := min(items, c.threads*4, max(1, work/grain))
	return max(1, n)
}

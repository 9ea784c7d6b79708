package optimizer

import "github.com/chanopt/chanopt/onnx"

// This file sizes batches by memory: at 28×28 a batch of 64 images costs megabytes, at 224×224 the
// same batch keeps gigabytes of activations, so every pass picks the largest batch (up to the
// caller's) whose activations fit a fixed budget. The budgets depend on the model only, never on
// the number of images: memory is bounded by the model.

// keptActivationBytes caps the activations one batch keeps when a pass keeps intermediate values
// (the outputs of every layer to refit, the inputs of every BN): at 224×224 a batch of 64 would
// keep gigabytes.
const keptActivationBytes = 64 << 20

// memBatch is the batch (at most batch) whose kept values of m, and the values the pass computes
// on its way to them (about three of the largest, as inferBatch), fit keptActivationBytes. Counting
// only the kept values let a pass that keeps one small layer output run at batch 64 with a
// working set of gigabytes at 224×224.
func memBatch(m *onnx.Model, keep []string, batch int) int {
	g := inferred(m)
	per := perImageBytes(g, keep) + 3*largestValueBytes(g)
	return min(batch, max(1, keptActivationBytes/max(1, per)))
}

// inferred is m's graph with every value's shape inferred at batch 1 (on a copy of the value
// table; m is not changed). Where the inputs' other dims are not static, the graph as it is.
func inferred(m *onnx.Model) *onnx.Graph {
	in, err := onnx.BatchOne(m.Graph, nil)
	if err != nil {
		return m.Graph
	}
	tmp, err := onnx.InferredCopy(m, in)
	if err != nil {
		return m.Graph
	}
	return tmp.Graph
}

// inferBatch is the batch (at most batch) for a plain forward pass of m: the engine reuses
// buffers, so about three of the largest activations are live at once.
func inferBatch(m *onnx.Model, batch int) int {
	return min(batch, max(1, keptActivationBytes/max(1, 3*largestValueBytes(inferred(m)))))
}

// trainActivationBytes caps what a training step keeps (every activation and its gradient). A
// floor of 8 images with 128 MiB made ResNet-50's fine-tune keep 1.7 GB at 224×224 (213 MB an
// image) and the whole shrink peak at 3.6 GiB; 512 MiB and a floor of 4 give ResNet-18 batches of
// 11 (47 MB an image) and ResNet-50 batches of 4.
const trainActivationBytes = 512 << 20

// trainBatch is the batch (at most batch, at least 4 where it was) for a training step of m: the
// trainer keeps every activation for the backward pass, and its gradient.
func trainBatch(m *onnx.Model, batch int) int {
	g := inferred(m)
	var names []string
	for name := range g.Values {
		names = append(names, name)
	}
	per := 2 * perImageBytes(g, names)
	return min(batch, max(min(batch, 4), trainActivationBytes/max(1, per)))
}

// largestValueBytes is the largest value of g per image.
func largestValueBytes(g *onnx.Graph) int {
	most := 0
	for name := range g.Values {
		most = max(most, perImageBytes(g, []string{name}))
	}
	return most
}

// perImageBytes is what keeping the named values costs per image, from their inferred shapes
// (dims after the batch; unknown dims count as 1).
func perImageBytes(g *onnx.Graph, names []string) int {
	total := 0
	for _, name := range names {
		v, ok := g.Values[name]
		if _, isInit := g.Inits[name]; !ok || isInit {
			continue
		}
		n := 1
		for _, d := range v.Shape[min(1, len(v.Shape)):] {
			if d.Size > 0 {
				n *= int(d.Size)
			}
		}
		total += 4 * n
	}
	return total
}

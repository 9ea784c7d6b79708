// Package latency builds per-layer latency tables in ONNX Runtime, the HALP/NetAdapt way: every
// Conv, Gemm and MatMul with constant weights (with the BatchNormalization and activations ONNX
// Runtime fuses into it) is cut from the real graph at its real input shape and timed at a ladder
// of input and output widths (multiples of 8 and 16, where ONNX Runtime's blocked NCHWc kernels
// are fast, a few widths off that grid, and the full width). Layers with the same configuration
// share one measurement.
//
// Layers are timed by ONNX Runtime's profiler, node by node, so the reorders into and out of the
// blocked layout that a cut model adds (and the network does not run) are left out, and copies
// that must be compared run side by side in one model: a kernel's widths in one model, giving each
// width's time as a ratio to the full width's within the same runs, and every kernel at full width
// in another, giving their shares of the model's time. On a shared 2-vCPU machine a kernel's time
// moves by a third in spells of a few hundred milliseconds. On regnet_y_400mf, two builds of its
// table with every width timed in a model of its own, one after another, differed by a median 22%
// per width (times over 50 µs), and the search chose widths for that noise; side by side, the
// widths' ratios to the full width differ by a median 8% between builds, and the kernels' shares
// by 5%.
//
// Table.Predict turns a candidate's group widths into a latency: each layer's time at the widths
// the groups give its input and output (interpolated along its ladders, combined as time(in, out)
// ≈ time(in, full) · time(full, out) / time(full, full)), summed, for the layers' share of the
// model's kernel time (profiled in the whole model); the rest, elementwise work on the layers'
// outputs, in proportion to the outputs' sizes; the ratio scaled to the whole model's measured
// time and corrected by a calibration on a uniform cut.
//
// Tables are cached as JSON under $XDG_CACHE_HOME/chanopt/latency, keyed by a hash of the model's
// bytes, the runtime and its version, threads, batch and input shapes, so a second build is a
// file read.
//
// It must not choose widths or change the model: the optimizer asks it for predictions.
package latency

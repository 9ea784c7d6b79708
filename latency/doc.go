// Package latency builds per-layer latency tables in ONNX Runtime, the HALP/NetAdapt way: every
// Conv, Gemm and MatMul with constant weights (with the BatchNormalization and activations ONNX
// Runtime fuses into it) is cut from the real graph at its real input shape, and the single-layer
// model is timed at a ladder of input and output widths (multiples of 8 and 16, where ONNX
// Runtime's blocked NCHWc kernels are fast, a few widths off that grid, and the full width), with
// warm-up and lower quartiles. Layers with the same configuration share one measurement.
//
// Table.Predict turns a candidate's group widths into a latency: each layer's time at the widths
// the groups give its input and output (interpolated along its ladders, combined as time(in, out)
// ≈ time(in, full) · time(full, out) / time(full, full)), summed and scaled to the whole model's
// measured time, so ops no table covers, and what cutting adds (reorders at a single layer's
// boundaries), keep their share.
//
// Tables are cached as JSON under $XDG_CACHE_HOME/chanopt/latency, keyed by a hash of the model's
// bytes, the runtime and its version, threads, batch and input shapes, so a second build is a
// file read.
//
// It must not choose widths or change the model: the optimizer asks it for predictions.
package latency

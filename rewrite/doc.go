// Package rewrite owns the graph transforms of channel pruning: dependency extraction (which
// channels must shrink together, through every op, with an index map per edge and a reason for
// every pinned group), channel slicing (every tensor a group touches, shared constants un-shared,
// Split sizes, Slice bounds and Reshape targets rewritten; SliceWeights applies the same cut to a
// copy of the model holding other values, so a kept value can be traced to its origin), and the
// masking used to prove a slice exact.
//
// Groups are found by union-find over channel elements: every producer (Conv, ConvTranspose, Gemm,
// MatMul, a graph input, or an op chanopt cannot see through) makes a space of channels; ops that
// carry channels map each value's channel axis onto those elements; elementwise ops join elements
// one to one. A group is the set of joined elements that touch the same spaces.
//
// Each op family has one coupling rule (rules.go holds the table from op type to rule; rule_*.go
// one family each: conv, gemm, norm, elementwise, concat, split, slice, reshape, axes, reduce,
// pass-through). A rule maps the node's input layouts to its output layouts, joins or pins
// elements, and records the actions Slice and Mask take on the node; an op without a rule is
// opaque and pins its channels with a reason. Adding an op means adding one rule and one
// hand-built graph test in rules_test.go.
//
// It must not run models or choose widths: the optimizer decides what to keep.
package rewrite

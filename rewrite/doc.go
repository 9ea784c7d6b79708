// Package rewrite owns the graph transforms of channel pruning: dependency extraction (which
// channels must shrink together, through every op, with an index map per edge and a reason for
// every pinned group), channel slicing (every tensor a group touches, shared constants un-shared,
// Split sizes, Slice bounds and Reshape targets rewritten), and the masking used to prove a slice
// exact.
//
// Groups are found by union-find over channel elements: every producer (Conv, ConvTranspose, Gemm,
// MatMul, a graph input, or an op chanopt cannot see through) makes a space of channels; ops that
// carry channels map each value's channel axis onto those elements; elementwise ops join elements
// one to one. A group is the set of joined elements that touch the same spaces.
//
// It must not run models or choose widths: the optimizer decides what to keep.
package rewrite

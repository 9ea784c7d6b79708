// Package onnx owns the ONNX wire format and chanopt's graph IR.
//
// The format layer (file.go) reads and writes ModelProto files losslessly, external data included;
// the generated wire types live in onnx/pb. Large weights are not copied on the way (wire.go): on
// Linux they are viewed in a private, leased mapping of the model file (mmap_linux.go). The IR (ir.go) is plain data: a Graph of Nodes with typed
// attributes, Values with dtypes and (possibly symbolic) shapes, and Tensors holding weights as
// float32. Import normalises what exporters spell differently (Constant nodes, Identity of
// initializers, the opset forms of Clip, Split, Squeeze, Pad, Resize, Slice, Reshape); Export writes
// the IR back, reusing every proto the IR did not change. Shape inference (shape.go) and the cost
// model (cost.go) work on the IR.
//
// Only this package touches protobuf. It must not know about pruning, and it does not execute models.
package onnx

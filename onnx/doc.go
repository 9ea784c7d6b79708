// Package onnx owns the ONNX wire format and chanopt's graph IR.
//
// The format layer (file.go) reads and writes ModelProto files losslessly, external data included;
// the generated wire types live in onnx/pb. A model file is read once, with plain reads: its
// structure goes to protobuf, and the raw_data of its large initializers, which protobuf would copy
// again, goes straight into one buffer, each 8-byte aligned so that the IR views float32 weights in
// place (wire.go). An external data file is read into one buffer too, its tensors viewed in it
// (float32 ones copied only where their offset is not a multiple of 4). No file mappings, no signal
// handlers: loading leaves the process as it found it. Reads are bounded (filelimits.go): a model
// file over protobuf's 2 GiB limit is refused before it is read, a stream (a pipe, a device) is
// read at most that far, and tensor dims are checked against the data present and the memory
// available before anything is allocated for them.
//
// The IR (ir.go) is plain data: a Graph of Nodes with typed attributes, Values with dtypes and
// (possibly symbolic) shapes, and Tensors holding weights as float32. Import normalises what
// exporters spell differently (Constant nodes, Identity of initializers, the opset forms of Clip,
// Split, Squeeze, Pad, Resize, Slice, Reshape: opsetforms.go) and refuses a model whose ai.onnx
// opset is newer than NewestOpset, the newest one these rules cover; Export writes the IR back,
// reusing every proto the IR did not change. Shape inference (shape.go) and the cost model
// (cost.go) work on the IR.
//
// Only this package touches protobuf. It must not know about pruning, and it does not execute models.
package onnx

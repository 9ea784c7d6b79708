package main

import (
	"os"
	"runtime/debug"
)

// returnMemory collects and hands the heap's free pages back to the system; the CLI calls it as
// each stage begins. What a stage dropped (a trainer's activations, a refit's normal equations)
// is garbage, but the runtime returns free pages only gradually, so without it the next stage's
// memory (ONNX Runtime's sessions for the latency proof right after the fine-tune) came on top
// of the last one's. A collection of chanopt's heap takes milliseconds, and there are a dozen
// stages.
func returnMemory() { debug.FreeOSMemory() }

// gcPercent is the garbage collector's target for chanopt's commands: collect once the heap has
// grown by half over what the last collection found live (Go's default waits until it has
// doubled). At the default a ResNet-50 shrink's heap reached twice what it held: each collection
// that fell while a compiled program's weight copies or a batch's activations were live doubled
// the next target, and the garbage of the following batches filled it. Measured on
// `shrink models/resnet8_bn.onnx --macs 0.3` with 2,000 Fashion-MNIST images and 4 epochs, two
// runs each on a quiet machine (with the per-stage release of returnMemory): at 100, 15.1-15.4 s
// wall and 227 MB peak; at 50, 15.9 s and 159-176 MB; at 25, 17.0-17.6 s and 152 MB. At 25 the
// ResNet-50 shrink peaked at 1.79 GiB (564 collections, 5 s of marking, against 117 and 0.5 s).
const gcPercent = 50

// setGCTarget applies gcPercent unless the user set GOGC (or GOMEMLIMIT, which they size
// against the default target).
func setGCTarget() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

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
// grown by a quarter over what the last collection found live (Go's default waits until it has
// doubled). At the default a ResNet-50 shrink's heap reached twice what it held: each collection
// that fell while a compiled program's weight copies or a batch's activations were live doubled
// the next target, and the garbage of the following batches filled it. The heap is mostly large
// float slices without pointers, which a collection marks in milliseconds: measured with gctrace
// on that shrink, 544 collections instead of 117 and 4.7 s of CPU marking instead of 0.5, about
// 1% of the run's 430 s of CPU.
const gcPercent = 25

// setGCTarget applies gcPercent unless the user set GOGC (or GOMEMLIMIT, which they size
// against the default target).
func setGCTarget() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

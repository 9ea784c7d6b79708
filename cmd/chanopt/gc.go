package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's target for chanopt's commands: collect once the heap has
// grown by a quarter over what the last collection found live (Go's default waits until it has
// doubled). At the default a ResNet-50 shrink's heap reached twice what it held: each collection
// that fell while a compiled program's weight copies or a batch's activations were live doubled
// the next target, and the garbage of the following batches filled it. The heap is mostly large
// float slices without pointers, which a collection marks in milliseconds (gctrace: about 1 s of
// CPU for 105 collections over that whole run), so collecting four times as often costs little.
const gcPercent = 25

// setGCTarget applies gcPercent unless the user set GOGC (or GOMEMLIMIT, which they size
// against the default target).
func setGCTarget() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles writes a CPU profile to $CHANOPT_CPUPROFILE, a heap profile (at exit) to
// $CHANOPT_MEMPROFILE and a memory trace with the heap profile at its peak to $CHANOPT_MEMTRACE
// (traceMemory), for `go tool pprof` on a whole command as users run it. It returns the function
// that finishes them. Developers' tool: not a flag, so it never shows in --help.
func startProfiles() (stop func()) {
	var cpu *os.File
	stopTrace := func() {}
	if p := os.Getenv("CHANOPT_MEMTRACE"); p != "" {
		stop, err := traceMemory(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chanopt: CHANOPT_MEMTRACE: %v\n", err)
		} else {
			stopTrace = stop
		}
	}
	if p := os.Getenv("CHANOPT_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "chanopt: CHANOPT_CPUPROFILE: %v\n", err)
		} else {
			cpu = f
		}
	}
	return func() {
		stopTrace()
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if p := os.Getenv("CHANOPT_MEMPROFILE"); p != "" {
			f, err := os.Create(p)
			if err == nil {
				runtime.GC()
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "chanopt: CHANOPT_MEMPROFILE: %v\n", err)
			}
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"time"
)

// traceMemory samples the process's resident memory and the Go runtime's memory classes every
// 100 ms while a command runs and writes a line to path whenever one of them has moved by 32 MiB
// (and every 5 s), so a run's memory can be read against its stages: RSS that the Go heap does
// not explain is the runtime's headroom, released pages not yet returned, or native memory (ONNX
// Runtime's). Each time RSS reaches a new high by 64 MiB it also writes the heap profile (live
// objects as of the last collection) to path+".heap", so the last one written shows who held the
// memory at the peak. Developers' tool, set by $CHANOPT_MEMTRACE (see startProfiles).
func traceMemory(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	names := []string{
		"/memory/classes/total:bytes",
		"/memory/classes/heap/objects:bytes",
		"/gc/heap/live:bytes",
		"/gc/heap/goal:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/released:bytes",
		"/memory/classes/heap/unused:bytes",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	fmt.Fprintln(w, "# seconds rss_mib total_mib objects_mib live_mib goal_mib free_mib released_mib unused_mib peak_rss_mib")
	start := time.Now()
	done, finished := make(chan struct{}), make(chan struct{})
	const mib = 1 << 20
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var last []int64
		var lastAt time.Duration
		var peak, profiled int64
		for {
			select {
			case <-done:
				w.Flush()
				f.Close()
				return
			case <-tick.C:
			}
			metrics.Read(samples)
			now := []int64{residentBytes()}
			for _, s := range samples {
				v := int64(0)
				if s.Value.Kind() == metrics.KindUint64 {
					v = int64(s.Value.Uint64())
				}
				now = append(now, v)
			}
			peak = max(peak, now[0])
			at := time.Since(start)
			moved := last == nil || at-lastAt >= 5*time.Second
			for i := range now {
				if last != nil && abs64(now[i]-last[i]) >= 32*mib {
					moved = true
				}
			}
			if moved {
				fmt.Fprintf(w, "%.1f", at.Seconds())
				for _, v := range now {
					fmt.Fprintf(w, " %d", v/mib)
				}
				fmt.Fprintf(w, " %d\n", peak/mib)
				w.Flush()
				last, lastAt = now, at
			}
			if now[0] >= profiled+64*mib {
				profiled = now[0]
				if hf, err := os.Create(path + ".heap"); err == nil {
					pprof.Lookup("heap").WriteTo(hf, 0)
					hf.Close()
				}
			}
		}
	}()
	return func() { close(done); <-finished }, nil
}

// residentBytes is the process's resident set size from /proc/self/statm (0 where there is none).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := bytes.Fields(b)
	if len(fields) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

package ort

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unsafe"
)

// NodeTime is one node's kernel time in one run.
type NodeTime struct {
	Node string // the node's name in the optimised graph ONNX Runtime runs
	Op   string
	Dur  time.Duration
}

// ProfileRuns runs a model with ONNX Runtime's profiler on, like Time (Warmup untimed runs, then
// Runs and more within Budget), and returns each timed run's nodes and their kernel times.
//
// Timing nodes rather than runs serves two ends. A layer cut out of a network into a model of its
// own is run with costs the network does not pay for it: the run's fixed overhead and, on CPUs
// with blocked NCHWc kernels, ReorderInput and ReorderOutput nodes that convert the model's input
// and output to and from the blocked layout, where inside the network the layer reads and writes
// blocked tensors directly (on regnet_y_400mf at 224×224, 2 threads, the cut of its second stage's
// first 1×1 conv ran 370 µs a run, its Conv kernel 227 µs, the same kernel 213 µs inside the whole
// network). And models with several layers side by side are timed node by node within the same
// run, so a spell of the machine running slowly falls on all of them alike: on a 2-vCPU VM one
// such layer's kernel alternated between about 220 and 340 µs in spells of a few hundred
// milliseconds, so layers timed one after the other compare by chance.
func ProfileRuns(name string, model []byte, threads int, inputs []Tensor, opt TimeOptions) ([][]NodeTime, error) {
	if len(model) == 0 {
		return nil, fmt.Errorf("ort: %s: empty model", name)
	}
	dir, err := os.MkdirTemp("", "chanopt-profile")
	if err != nil {
		return nil, fmt.Errorf("ort: %s: profile folder: %w", name, err)
	}
	defer os.RemoveAll(dir)
	s, err := newSession(name, model, threads, filepath.Join(dir, "run"))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	r, err := s.Runner(inputs)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	samples, err := r.timed(opt)
	if err != nil {
		return nil, err
	}
	path, err := s.endProfiling()
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	runs, err := readProfile(path)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", name, err)
	}
	if made := opt.Warmup + len(samples); len(runs) != made {
		return nil, fmt.Errorf("ort: %s: the profile holds %d runs, %d were made", name, len(runs), made)
	}
	return runs[opt.Warmup:], nil
}

// endProfiling stops the session's profiler and returns the file it wrote.
func (s *Session) endProfiling() (string, error) {
	var p *byte
	if err := s.api.call(fnSessionEndProfiling, s.handle, s.api.alloc, uintptr(unsafe.Pointer(&p))); err != nil {
		return "", fmt.Errorf("end profiling: %w", err)
	}
	path := goString(p)
	_ = s.api.call(fnAllocatorFree, s.api.alloc, uintptr(unsafe.Pointer(p)))
	return path, nil
}

// profileEvent is the part of a profile entry (Chrome trace format) read here.
type profileEvent struct {
	Cat  string `json:"cat"`
	Name string `json:"name"`
	TS   int64  `json:"ts"`  // µs since the session started
	Dur  int64  `json:"dur"` // µs
	Args struct {
		Op string `json:"op_name"`
	} `json:"args"`
}

// readProfile returns each run in the profile, in order, with its nodes' kernel times. A node's
// run is the model_run event whose span holds its start.
func readProfile(path string) ([][]NodeTime, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	var events []profileEvent
	if err := json.Unmarshal(b, &events); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	var runs, nodes []profileEvent
	for _, e := range events {
		switch {
		case e.Cat == "Session" && e.Name == "model_run":
			runs = append(runs, e)
		case e.Cat == "Node" && strings.HasSuffix(e.Name, kernelSuffix):
			nodes = append(nodes, e)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].TS < runs[j].TS })
	out := make([][]NodeTime, len(runs))
	for _, n := range nodes {
		i := sort.Search(len(runs), func(i int) bool { return runs[i].TS > n.TS }) - 1
		if i < 0 || n.TS > runs[i].TS+runs[i].Dur {
			return nil, fmt.Errorf("profile %s: node %s at %d µs is outside every run", path, n.Name, n.TS)
		}
		out[i] = append(out[i], NodeTime{Node: strings.TrimSuffix(n.Name, kernelSuffix), Op: n.Args.Op,
			Dur: time.Duration(n.Dur) * time.Microsecond})
	}
	return out, nil
}

// kernelSuffix ends the name of a node's kernel-time event (others time its inputs' fences).
const kernelSuffix = "_kernel_time"

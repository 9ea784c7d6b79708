package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chanopt/chanopt/onnx"
)

// formatRuns is how many times each variant runs; medians are printed.
const formatRuns = 11

// formatTarget is the most Load+Save may cost against the floor.
const formatTarget = 1.3

// benchFormat: onnx.Load + onnx.Save of the resnet50 export against the floor, the same bytes
// read and written with plain calls (os.ReadFile, os.WriteFile to a new file), measured in the same
// run. The two alternate, run by run, so that a change in the machine's load (other jobs share its
// two cores) moves both; each writes to a file that does not exist yet (removed outside the
// timing), so neither pays for freeing the previous output.
//
// Save with default options is atomic (a temporary file renamed into place) but not durable, as
// os.WriteFile, cp or onnx.save: that is the figure the 1.3x target applies to. WriteOptions.Sync
// (chanopt shrink --sync) fsyncs the new file before the rename; it is printed for scale against
// the floor with an fsync before the close.
func benchFormat(env *benchEnv) error {
	path := filepath.Join(env.zoo, "resnet50.onnx")
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%v (run make zoo)", err)
	}
	dir, err := os.MkdirTemp("", "chanopt-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "resnet50.onnx")

	loadSave := func(opt onnx.WriteOptions) func() error {
		return func() error {
			m, err := onnx.Load(path)
			if err != nil {
				return err
			}
			return onnx.Save(out, m, opt)
		}
	}
	floor := func(sync bool) func() error {
		return func() error {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !sync {
				return os.WriteFile(out, data, 0o644)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = f.Write(data)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
	}
	load := func() error { _, err := onnx.Load(path); return err }
	variants := []func() error{floor(false), loadSave(onnx.WriteOptions{}), load, floor(true), loadSave(onnx.WriteOptions{Sync: true})}
	times, err := alternate(formatRuns, out, variants)
	if err != nil {
		return err
	}
	floorT, atomicT, loadT, floorSyncT, durableT := times[0], times[1], times[2], times[3], times[4]

	ratio := float64(atomicT) / float64(floorT)
	verdict := fmt.Sprintf("within the %.1fx target", formatTarget)
	if ratio > formatTarget {
		verdict = fmt.Sprintf("over the %.1fx target", formatTarget)
	}
	fmt.Printf("   resnet50.onnx (%.0f MB), medians of %d alternating runs: floor (os.ReadFile + os.WriteFile) %s, Load %s, Load+Save %s\n",
		float64(info.Size())/1e6, formatRuns, ms(floorT), ms(loadT), ms(atomicT))
	fmt.Printf("   Load+Save / floor = %.2fx: %s\n", ratio, verdict)
	fmt.Printf("   with fsync (--sync): Load+Save %s / floor with fsync %s = %.2fx (for scale; the target is on the default)\n",
		ms(durableT), ms(floorSyncT), float64(durableT)/float64(floorSyncT))
	return nil
}

// alternate runs the variants one after the other, runs times over, removing out before each run
// (outside the timing), and returns the median time of each.
func alternate(runs int, out string, variants []func() error) ([]time.Duration, error) {
	times := make([][]time.Duration, len(variants))
	for range runs {
		for i, run := range variants {
			if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			start := time.Now()
			if err := run(); err != nil {
				return nil, err
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	medians := make([]time.Duration, len(variants))
	for i, ts := range times {
		slices.Sort(ts)
		medians[i] = ts[len(ts)/2]
	}
	return medians, nil
}

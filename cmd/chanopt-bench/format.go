package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/chanopt/chanopt/onnx"
)

// benchFormat: onnx.Load + onnx.Save of the resnet50 export against reading the file once with cat.
//
// Save with default options is atomic (a temporary file renamed into place) but not durable, as
// cp or onnx.save: that is the figure the 3x target applies to. WriteOptions.Sync (chanopt shrink
// --sync) fsyncs the new file before the rename, so its time includes putting 100 MB on the disk,
// slower than any copy in memory; it is printed for scale with the floor line, the same I/O with
// plain calls (os.ReadFile, one Write to a new file, with and without fsync).
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
	cat, err := median(7, func() error { return exec.Command("sh", "-c", "cat \"$0\" >/dev/null", path).Run() })
	if err != nil {
		return err
	}
	loadSave := func(opt onnx.WriteOptions) func() error {
		return func() error {
			m, err := onnx.Load(path)
			if err != nil {
				return err
			}
			return onnx.Save(out, m, opt)
		}
	}
	durable, err := median(7, loadSave(onnx.WriteOptions{Sync: true}))
	if err != nil {
		return err
	}
	atomic, err := median(7, loadSave(onnx.WriteOptions{}))
	if err != nil {
		return err
	}
	load, err := median(7, func() error { _, err := onnx.Load(path); return err })
	if err != nil {
		return err
	}
	floor, floorNoSync, err := ioFloor(path, dir)
	if err != nil {
		return err
	}
	x := func(d time.Duration) string { return fmt.Sprintf("%.2fx", float64(d)/float64(cat)) }
	target := func(d time.Duration) string {
		if float64(d) <= 3*float64(cat) {
			return "within the 3x target"
		}
		return "over the 3x target"
	}
	fmt.Printf("   resnet50.onnx (%.0f MB): cat %s, Load %s, Load+Save %s (with --sync %s)\n",
		float64(info.Size())/1e6, ms(cat), ms(load), ms(atomic), ms(durable))
	fmt.Printf("   Load+Save / cat, default Save (atomic rename, no fsync) = %s: %s\n", x(atomic), target(atomic))
	fmt.Printf("   Load+Save / cat, Sync (fsync before the rename, --sync) = %s (for scale; the target is on the default)\n", x(durable))
	fmt.Printf("   floor, the same bytes with os.ReadFile + one Write to a new file: %s with fsync = %s, %s without = %s\n",
		ms(floor), x(floor), ms(floorNoSync), x(floorNoSync))
	return nil
}

// ioFloor times reading the file with os.ReadFile and writing it with one Write to a new file, with
// and without fsync (medians of 7). The file written before is removed outside the timing.
func ioFloor(path, dir string) (withSync, without time.Duration, err error) {
	out := filepath.Join(dir, "floor.onnx")
	run := func(sync bool) (time.Duration, error) {
		var ds []time.Duration
		for range 7 {
			os.Remove(out)
			start := time.Now()
			data, err := os.ReadFile(path)
			if err != nil {
				return 0, err
			}
			f, err := os.Create(out)
			if err != nil {
				return 0, err
			}
			_, err = f.Write(data)
			if err == nil && sync {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], nil
	}
	if withSync, err = run(true); err != nil {
		return 0, 0, err
	}
	without, err = run(false)
	os.Remove(out)
	return withSync, without, err
}

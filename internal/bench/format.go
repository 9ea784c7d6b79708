package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/chanopt/chanopt/onnx"
)

// benchFormat: onnx.Load + onnx.Save of the resnet50 export against reading the file once with cat.
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
	loadSave, err := median(7, func() error {
		m, err := onnx.Load(path)
		if err != nil {
			return err
		}
		return onnx.Save(out, m, onnx.WriteOptions{})
	})
	if err != nil {
		return err
	}
	load, err := median(7, func() error { _, err := onnx.Load(path); return err })
	if err != nil {
		return err
	}
	fmt.Printf("   resnet50.onnx (%.0f MB): cat %s, Load %s, Load+Save %s\n", float64(info.Size())/1e6, ms(cat), ms(load), ms(loadSave))
	fmt.Printf("   Load+Save / cat = %.2fx (target ≤ 3x; Save includes fsync)\n", float64(loadSave)/float64(cat))
	return nil
}

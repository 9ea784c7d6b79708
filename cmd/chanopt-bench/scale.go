package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chanopt/chanopt/optimizer"
)

// scaleModels are the real-size networks of the scale section (torchvision layouts at 224×224
// from `make zoo`; random weights, so the figures are of time and memory, not accuracy).
var scaleModels = []string{"resnet18", "resnet50", "mobilenet_v2"}

// benchScale runs `chanopt shrink MODEL --macs 0.5 --data PHOTOS` as a user would (the built
// binary, a folder of 1,000 224×224 JPEGs from `make photos`, ImageNet mean and std, every other
// flag at its default) and prints the wall time of each stage and in all, the peak RSS of the
// process, and the longest interval without a line on stderr.
func benchScale(env *benchEnv) error {
	photos := os.Getenv("CHANOPT_PHOTOS")
	if photos == "" {
		return fmt.Errorf("CHANOPT_PHOTOS is not set (make bench sets it after make photos)")
	}
	bin, dir, err := builtBinary("chanopt-scale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("   `chanopt shrink MODEL --macs 0.5 --data <%s> --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225`, defaults otherwise (--time %s)\n",
		photos, optimizer.DefaultOptions().Time)
	fmt.Println("   | model | total | stages (s) | peak RSS | longest silence | MACs kept | held-back agreement |")
	fmt.Println("   |---|---|---|---|---|---|---|")
	for _, name := range scaleModels {
		model := filepath.Join(env.zoo, name+".onnx")
		rep := filepath.Join(dir, name+".json")
		cmd := exec.Command(bin, "shrink", model, "--macs", "0.5", "--data", photos,
			"--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225",
			"-o", filepath.Join(dir, name+".slim.onnx"), "--report", rep)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return err
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		// The longest silence is measured from the start to the first line, between lines, and
		// from the last line to the exit.
		last, longest := start, time.Duration(0)
		var tail []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			now := time.Now()
			longest = max(longest, now.Sub(last))
			last = now
			tail = append(tail, sc.Text())
			if len(tail) > 5 {
				tail = tail[1:]
			}
		}
		err = cmd.Wait()
		total := time.Since(start)
		longest = max(longest, time.Since(last))
		if err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, strings.Join(tail, " | "))
		}
		peak := int64(0)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			peak = ru.Maxrss * 1024 // kilobytes on Linux
		}
		var r struct {
			optimizer.Report
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		var stages []string
		for _, t := range r.Timings {
			if t.Stage != "total" {
				stages = append(stages, fmt.Sprintf("%s %.0f", t.Stage, t.Seconds))
			}
		}
		agree := "-"
		if d := r.Distill; d != nil && len(d.Stages) > 0 {
			agree = fmt.Sprintf("%.2f%%", 100*d.Final().Top1)
		}
		fmt.Printf("   | %s | %s | %s | %.2f GiB | %.1f s | %.3f | %s |\n", name, total.Round(time.Second),
			strings.Join(stages, ", "), float64(peak)/(1<<30), longest.Seconds(),
			float64(r.After.MACs)/float64(r.Before.MACs), agree)
	}
	return nil
}

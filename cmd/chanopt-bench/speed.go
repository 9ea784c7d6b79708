package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
)

// speedModels are the 224×224 networks of the speed section, from `make zoo` (torchvision layouts,
// random weights; BN folded into the convs for inference, kept in the *_bn files for training).
var speedModels = []string{"resnet18", "mobilenet_v2"}

// speedTrainBatch is the batch of the training step the issue sets (resnet18 at 224×224).
const speedTrainBatch = 16

// benchSpeed: the engine's forward pass at 224×224 (batch 1 and 32) against ONNX Runtime and
// PyTorch CPU, and its training step (resnet18, batch 16, cross-entropy, Adam, BN in train mode)
// against PyTorch, all on 2 threads in one run. The three runtimes take turns in rounds so load on
// the shared machine hits them alike; each reports its median. PyTorch runs torchvision's own
// definition of the same layout (random weights: the times, not the outputs, are compared), in
// eval mode under no_grad for the forward (its BN is not folded, as in eager use).
func benchSpeed(env *benchEnv) error {
	torch, err := startSpeedTorch()
	if err != nil {
		return fmt.Errorf("PyTorch: %w", err)
	}
	defer torch.close()
	fmt.Println("   median wall time per run (CPU time per run, all threads, in parentheses: steadier on a shared machine)")
	fmt.Println("   | model | batch | chanopt | ONNX Runtime | PyTorch | ORT / chanopt (target ≥ 0.8x) | PyTorch / chanopt |")
	fmt.Println("   |---|---|---|---|---|---|---|")
	for _, name := range speedModels {
		if err := speedForward(env, torch, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := speedTrain(env, torch); err != nil {
		return fmt.Errorf("training step: %w", err)
	}
	printLoad()
	return nil
}

// speedForward times one model's forward pass at batch 1 and 32 in the three runtimes.
func speedForward(env *benchEnv, torch *torchProc, name string) error {
	path := filepath.Join(env.zoo, name+".onnx")
	m, err := onnx.Load(path)
	if err != nil {
		return fmt.Errorf("%w (make zoo)", err)
	}
	p, err := engine.Compile(m, engine.Options{Threads: 2})
	if err != nil {
		return err
	}
	defer p.Close()
	s, err := ort.Open(path, 2)
	if err != nil {
		return fmt.Errorf("ONNX Runtime: %v (run make ort)", err)
	}
	defer s.Close()
	for _, batch := range []int{1, 32} {
		x := randomImages(batch)
		in := engine.NewTensor([]int{batch, 3, 224, 224}, x)
		ot := []ort.Tensor{{Shape: []int64{int64(batch), 3, 224, 224}, Data: x}}
		rounds, per := 5, 4
		if batch > 1 {
			rounds, per = 3, 1
		}
		eng := func() error { _, err := p.RunSlice(in); return err }
		rt := func() error { _, err := s.Run(ot); return err }
		if err := eng(); err != nil { // warm up: plans and buffers
			return err
		}
		if err := rt(); err != nil {
			return err
		}
		if _, _, err := torch.ask(fmt.Sprintf("fwd %s %d 1", name, batch), 1); err != nil {
			return err
		}
		var ours, theirs, pt []time.Duration
		var oursCPU, theirsCPU, ptCPU time.Duration // ONNX Runtime's threads are this process's
		for r := 0; r < rounds; r++ {
			cpu0 := processCPU()
			if ours, err = timeRuns(ours, per, eng); err != nil {
				return err
			}
			cpu1 := processCPU()
			if theirs, err = timeRuns(theirs, per, rt); err != nil {
				return err
			}
			oursCPU, theirsCPU = oursCPU+cpu1-cpu0, theirsCPU+processCPU()-cpu1
			ts, cpu, err := torch.ask(fmt.Sprintf("fwd %s %d %d", name, batch, per), per)
			if err != nil {
				return err
			}
			pt = append(pt, ts...)
			ptCPU += cpu
		}
		o, t, q := med(ours), med(theirs), med(pt)
		n := time.Duration(rounds * per)
		fmt.Printf("   | %s | %d | %s (%s) | %s (%s) | %s (%s) | %.2fx (%.2fx) | %.2fx (%.2fx) |\n", name, batch,
			ms(o), ms(oursCPU/n), ms(t), ms(theirsCPU/n), ms(q), ms(ptCPU/n),
			t.Seconds()/o.Seconds(), ratio(theirsCPU, oursCPU), q.Seconds()/o.Seconds(), ratio(ptCPU, oursCPU))
	}
	return nil
}

// speedTrain times one training step of resnet18 (the *_bn export: BN in train mode) in the engine
// and in PyTorch: forward, cross-entropy on random labels, backward, Adam.
func speedTrain(env *benchEnv, torch *torchProc) error {
	path := filepath.Join(env.zoo, "resnet18_bn.onnx")
	m, err := onnx.Load(path)
	if err != nil {
		return fmt.Errorf("%w (make zoo)", err)
	}
	tr, err := engine.NewTrainer(m, engine.TrainOptions{Threads: 2, BNMode: "train", SkipInputGrad: true})
	if err != nil {
		return err
	}
	defer tr.Close()
	x := engine.NewTensor([]int{speedTrainBatch, 3, 224, 224}, randomImages(speedTrainBatch))
	rng := rand.New(rand.NewPCG(3, 4))
	labels := make([]int, speedTrainBatch)
	for i := range labels {
		labels[i] = rng.IntN(1000)
	}
	opt := &engine.Adam{}
	grad := &engine.Tensor{}
	step := func() error {
		y, err := tr.Forward(x)
		if err != nil {
			return err
		}
		engine.CrossEntropyInto(grad, y, labels)
		tr.ZeroGrad()
		if err := tr.Backward(grad); err != nil {
			return err
		}
		opt.Step(tr.Params(), 1e-3)
		return nil
	}
	if err := step(); err != nil {
		return err
	}
	if _, _, err := torch.ask(fmt.Sprintf("train resnet18 %d 1", speedTrainBatch), 1); err != nil {
		return err
	}
	var ours, theirs []time.Duration
	var oursCPU, theirsCPU time.Duration
	for r := 0; r < 3; r++ {
		cpu0 := processCPU()
		if ours, err = timeRuns(ours, 1, step); err != nil {
			return err
		}
		oursCPU += processCPU() - cpu0
		ts, cpu, err := torch.ask(fmt.Sprintf("train resnet18 %d 1", speedTrainBatch), 1)
		if err != nil {
			return err
		}
		theirs = append(theirs, ts...)
		theirsCPU += cpu
	}
	o, t := med(ours), med(theirs)
	fmt.Printf("   training step, resnet18 (BN in train mode) batch %d, cross-entropy + Adam: chanopt %s (CPU %s), PyTorch %s (CPU %s): PyTorch / chanopt = %.2fx (target ≥ 1x; CPU time %.2fx)\n",
		speedTrainBatch, ms(o), ms(oursCPU/3), ms(t), ms(theirsCPU/3), t.Seconds()/o.Seconds(), ratio(theirsCPU, oursCPU))
	return nil
}

// ratio is a/b, 0 when b is (CPU times are counted in clock ticks).
func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return a.Seconds() / b.Seconds()
}

// timeRuns appends the durations of n runs of f to ds.
func timeRuns(ds []time.Duration, n int, f func() error) ([]time.Duration, error) {
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			return ds, err
		}
		ds = append(ds, time.Since(start))
	}
	return ds, nil
}

// randomImages is batch×3×224×224 uniform [0, 1) values, the same for every runtime.
func randomImages(batch int) []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*3*224*224)
	for i := range x {
		x[i] = rng.Float32()
	}
	return x
}

// printLoad prints the 1-minute load average, since the machine may be shared.
func printLoad() {
	load, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(load)); len(f) > 0 {
		fmt.Printf("   load average %s on %d CPUs while measuring\n", f[0], runtime.NumCPU())
	}
}

// speedTorchScript serves timing requests for torchvision models on 2 threads. Each stdin line is
// "fwd NAME BATCH N" (N eval-mode forwards under no_grad) or "train NAME BATCH N" (N train-mode
// steps: cross-entropy on fixed random labels, backward, Adam); it answers with the N durations in
// seconds, then the CPU seconds used for them.
const speedTorchScript = `
import os, sys, time, resource
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch, torch.nn.functional as F
import torchvision.models as tvm
torch.set_num_threads(2)
nets, inputs, trainers = {}, {}, {}
def net(name):
    if name not in nets:
        torch.manual_seed(0)
        nets[name] = getattr(tvm, name)(weights=None)
    return nets[name]
def images(batch):
    if batch not in inputs:
        inputs[batch] = torch.rand(batch, 3, 224, 224)
    return inputs[batch]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
print("ready", flush=True)
for line in sys.stdin:
    kind, name, batch, n = line.split()
    batch, n = int(batch), int(n)
    m, x = net(name), images(batch)
    if kind == "fwd":
        m.eval()
        def run():
            with torch.no_grad():
                m(x)
    else:
        m.train()
        if name not in trainers:
            trainers[name] = (torch.optim.Adam(m.parameters(), 1e-3), torch.randint(0, 1000, (batch,)))
        opt, y = trainers[name]
        def run():
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    ts = []
    c = cpu()
    for _ in range(n):
        t = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t)
    ts.append(cpu() - c)
    print(" ".join(repr(t) for t in ts), flush=True)
`

// startSpeedTorch starts the PyTorch timing server of the speed section.
func startSpeedTorch() (*torchProc, error) {
	return startPython(speedTorchScript, "python3-torch and python3-torchvision")
}

// ask sends one request line and reads back n durations and the CPU time they used.
func (p *torchProc) ask(req string, n int) ([]time.Duration, time.Duration, error) {
	fmt.Fprintln(p.in, req)
	if err := p.in.Flush(); err != nil {
		return nil, 0, err
	}
	if !p.out.Scan() {
		return nil, 0, fmt.Errorf("PyTorch exited on %q", req)
	}
	var ds []time.Duration
	for _, f := range strings.Fields(p.out.Text()) {
		s, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, 0, err
		}
		ds = append(ds, time.Duration(s*float64(time.Second)))
	}
	if len(ds) != n+1 {
		return nil, 0, fmt.Errorf("PyTorch answered %q to %q", p.out.Text(), req)
	}
	return ds[:n], ds[n], nil
}

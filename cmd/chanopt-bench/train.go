package main

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
)

// benchTrain: one training step (forward, cross-entropy, backward, optimizer update) of the same
// ResNet-8 (stem 3×3/16, BasicBlocks 16, 32/s2, 64/s2 with BN, GAP, Linear; 28×28×1 input) at
// batch 64 with 2 threads, in chanopt's engine (models/resnet8_bn.onnx, BN in train mode, Adam),
// PyTorch CPU (models/train/nets.py ResNet8 in train mode, Adam) and gorgonia (the same net from
// Conv2d, BatchNorm, Rectify, Add, Mean and Mul; plain SGD). The three run interleaved in rounds
// so load on the machine hits them alike; each reports its median step.
func benchTrain(env *benchEnv) error {
	const batch, rounds = 64, 5
	model := filepath.Join(env.models, "resnet8_bn.onnx")
	m, err := onnx.Load(model)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewSource(1))
	x := engine.Zeros(batch, 1, 28, 28)
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	labels := make([]int, batch)
	for i := range labels {
		labels[i] = rng.Intn(10)
	}

	// chanopt
	tr, err := engine.NewTrainer(m, engine.TrainOptions{Threads: 2, BNMode: "train", SkipInputGrad: true})
	if err != nil {
		return err
	}
	defer tr.Close()
	opt := &engine.Adam{}
	grad := &engine.Tensor{}
	ourStep := func() error {
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

	// PyTorch, as a child process that runs steps on request
	torch, err := startTorch(filepath.Join(env.models, "train"), batch)
	if err != nil {
		return fmt.Errorf("PyTorch: %w", err)
	}
	defer torch.close()

	// gorgonia
	gg, err := newGorgoniaResNet8(batch, x.Data, labels)
	if err != nil {
		return fmt.Errorf("gorgonia: %w", err)
	}
	defer gg.close()

	var ours, theirs, gor []time.Duration
	var oursCPU, theirsCPU, gorCPU time.Duration
	for i := 0; i < 3; i++ { // warm up
		if err := ourStep(); err != nil {
			return err
		}
	}
	if _, _, err := torch.steps(3); err != nil {
		return err
	}
	if err := gg.step(); err != nil {
		return err
	}
	for r := 0; r < rounds; r++ {
		cpu0 := processCPU()
		for i := 0; i < 4; i++ {
			start := time.Now()
			if err := ourStep(); err != nil {
				return err
			}
			ours = append(ours, time.Since(start))
		}
		oursCPU += processCPU() - cpu0
		ts, cpu, err := torch.steps(4)
		if err != nil {
			return err
		}
		theirs = append(theirs, ts...)
		theirsCPU += cpu
		cpu0 = processCPU()
		start := time.Now()
		if err := gg.step(); err != nil {
			return err
		}
		gor = append(gor, time.Since(start))
		gorCPU += processCPU() - cpu0
	}
	o, p, g := med(ours), med(theirs), med(gor)
	oc, pc, gc := oursCPU/time.Duration(len(ours)), theirsCPU/time.Duration(len(theirs)), gorCPU/time.Duration(len(gor))
	gflop := 3 * 2 * resnet8MACs * batch / 1e9
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("   ResNet-8 (BN, train mode) batch %d, 2 threads, one step = forward + loss + backward + update (%.1f GFLOP)\n", batch, gflop)
	fmt.Printf("   median step: chanopt %s (%.0f GFLOP/s), PyTorch %s, gorgonia %s\n", ms(o), gflop/o.Seconds(), ms(p), ms(g))
	fmt.Printf("   CPU time per step (all threads): chanopt %s, PyTorch %s, gorgonia %s\n", ms(oc), ms(pc), ms(gc))
	fmt.Printf("   PyTorch / chanopt = %.2fx (target ≥ 1x; CPU time %.2fx), gorgonia / chanopt = %.1fx (target ≥ 5x; CPU time %.1fx)\n",
		float64(p)/float64(o), float64(pc)/float64(oc), float64(g)/float64(o), float64(gc)/float64(oc))
	if f := strings.Fields(string(load)); len(f) > 0 {
		fmt.Printf("   load average %s on %d CPUs while measuring\n", f[0], runtime.NumCPU())
	}
	return nil
}

// processCPU is the CPU time this process has used (user + system, all threads), from
// /proc/self/stat; zero where that is missing.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	// after the command: state is field 3, utime and stime fields 14 and 15 (clock ticks, 100 Hz)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// resnet8MACs is the multiply-accumulates of one ResNet-8 image (convs and the classifier).
const resnet8MACs = 28*28*16*9 + 2*28*28*16*16*9 + 14*14*32*(16*9+32*9+16) + 7*7*64*(32*9+64*9+32) + 64*10

func med(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// torchScript trains nets.ResNet8 on a fixed batch; for each line "n" on stdin it runs n steps and
// prints their durations in seconds, then the CPU seconds the process used for them.
const torchScript = `
import sys, time, resource
import torch, torch.nn.functional as F
torch.set_num_threads(2)
sys.path.insert(0, sys.argv[1])
from nets import ResNet8
torch.manual_seed(0)
batch = int(sys.argv[2])
m = ResNet8()
m.train()
opt = torch.optim.Adam(m.parameters(), 1e-3)
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))
def step():
    opt.zero_grad()
    F.cross_entropy(m(x), y).backward()
    opt.step()
print("ready", flush=True)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for line in sys.stdin:
    ts = []
    c = cpu()
    for _ in range(int(line)):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    ts.append(cpu() - c)
    print(" ".join(repr(t) for t in ts), flush=True)
`

type torchProc struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Scanner
	w   interface{ Close() error }
}

func startTorch(netsDir string, batch int) (*torchProc, error) {
	return startPython(torchScript, "python3-torch", netsDir, strconv.Itoa(batch))
}

// startPython starts $CHANOPT_PYTHON (or Debian's python3) on script with args and waits for its
// "ready" line; needs names the packages a failure to start points at.
func startPython(script, needs string, args ...string) (*torchProc, error) {
	python := os.Getenv("CHANOPT_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}
	cmd := exec.Command(python, append([]string{"-c", script}, args...)...)
	cmd.Stderr = os.Stderr
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &torchProc{cmd: cmd, in: bufio.NewWriter(w), out: bufio.NewScanner(r), w: w}
	if !p.out.Scan() || p.out.Text() != "ready" {
		p.close()
		return nil, fmt.Errorf("%s did not start (needs %s)", python, needs)
	}
	return p, nil
}

// steps runs n steps and returns their durations and the CPU time they used.
func (p *torchProc) steps(n int) ([]time.Duration, time.Duration, error) {
	fmt.Fprintf(p.in, "%d\n", n)
	if err := p.in.Flush(); err != nil {
		return nil, 0, err
	}
	if !p.out.Scan() {
		return nil, 0, fmt.Errorf("PyTorch exited")
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
		return nil, 0, fmt.Errorf("PyTorch answered %q", p.out.Text())
	}
	return ds[:n], ds[n], nil
}

func (p *torchProc) close() {
	p.w.Close()
	p.cmd.Wait()
}

// gorgoniaNet is ResNet-8 in gorgonia with one SGD step per run.
type gorgoniaNet struct {
	g      *G.ExprGraph
	vm     G.VM
	solver G.Solver
	learn  G.Nodes
}

func newGorgoniaResNet8(batch int, images []float32, labels []int) (_ *gorgoniaNet, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	g := G.NewGraph()
	dt := tensor.Float32
	n := &gorgoniaNet{g: g}
	x := G.NewTensor(g, dt, 4, G.WithShape(batch, 1, 28, 28), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(batch, 1, 28, 28), tensor.WithBacking(append([]float32(nil), images...)))))
	oneHot := make([]float32, batch*10)
	for i, l := range labels {
		oneHot[i*10+l] = 1
	}
	y := G.NewMatrix(g, dt, G.WithShape(batch, 10), G.WithName("y"),
		G.WithValue(tensor.New(tensor.WithShape(batch, 10), tensor.WithBacking(oneHot))))
	k := 0
	convBN := func(in *G.Node, cin, cout, ks, stride int) (*G.Node, error) {
		k++
		w := G.NewTensor(g, dt, 4, G.WithShape(cout, cin, ks, ks), G.WithName(fmt.Sprintf("w%d", k)), G.WithInit(G.GlorotN(1)))
		scale := G.NewTensor(g, dt, 4, G.WithShape(1, cout, 1, 1), G.WithName(fmt.Sprintf("s%d", k)), G.WithInit(G.Ones()))
		bias := G.NewTensor(g, dt, 4, G.WithShape(1, cout, 1, 1), G.WithName(fmt.Sprintf("b%d", k)), G.WithInit(G.Zeroes()))
		n.learn = append(n.learn, w, scale, bias)
		c, err := G.Conv2d(in, w, tensor.Shape{ks, ks}, []int{ks / 2, ks / 2}, []int{stride, stride}, []int{1, 1})
		if err != nil {
			return nil, err
		}
		out, _, _, _, err := G.BatchNorm(c, scale, bias, 0.9, 1e-5)
		return out, err
	}
	block := func(in *G.Node, cin, cout, stride int) (*G.Node, error) {
		a, err := convBN(in, cin, cout, 3, stride)
		if err != nil {
			return nil, err
		}
		if a, err = G.Rectify(a); err != nil {
			return nil, err
		}
		if a, err = convBN(a, cout, cout, 3, 1); err != nil {
			return nil, err
		}
		s := in
		if stride != 1 || cin != cout {
			if s, err = convBN(in, cin, cout, 1, stride); err != nil {
				return nil, err
			}
		}
		if a, err = G.Add(a, s); err != nil {
			return nil, err
		}
		return G.Rectify(a)
	}
	h, err := convBN(x, 1, 16, 3, 1)
	if err != nil {
		return nil, err
	}
	if h, err = G.Rectify(h); err != nil {
		return nil, err
	}
	cin := 16
	for i, w := range []int{16, 32, 64} {
		stride := 2
		if i == 0 {
			stride = 1
		}
		if h, err = block(h, cin, w, stride); err != nil {
			return nil, err
		}
		cin = w
	}
	if h, err = G.Mean(h, 2, 3); err != nil { // global average pool
		return nil, err
	}
	fc := G.NewMatrix(g, dt, G.WithShape(64, 10), G.WithName("fc"), G.WithInit(G.GlorotN(1)))
	fb := G.NewMatrix(g, dt, G.WithShape(1, 10), G.WithName("fb"), G.WithInit(G.Zeroes()))
	n.learn = append(n.learn, fc, fb)
	logits, err := G.Mul(h, fc)
	if err != nil {
		return nil, err
	}
	if logits, err = G.BroadcastAdd(logits, fb, nil, []byte{0}); err != nil {
		return nil, err
	}
	sm, err := G.SoftMax(logits)
	if err != nil {
		return nil, err
	}
	logp, err := G.Log(sm)
	if err != nil {
		return nil, err
	}
	picked, err := G.HadamardProd(logp, y)
	if err != nil {
		return nil, err
	}
	cost, err := G.Mean(picked)
	if err != nil {
		return nil, err
	}
	if cost, err = G.Neg(cost); err != nil {
		return nil, err
	}
	if _, err = G.Grad(cost, n.learn...); err != nil {
		return nil, err
	}
	n.vm = G.NewTapeMachine(g, G.BindDualValues(n.learn...))
	n.solver = G.NewVanillaSolver(G.WithLearnRate(0.01))
	return n, nil
}

func (n *gorgoniaNet) step() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gorgonia panicked: %v", r)
		}
	}()
	if err := n.vm.RunAll(); err != nil {
		return err
	}
	if err := n.solver.Step(G.NodesToValueGrads(n.learn)); err != nil {
		return err
	}
	n.vm.Reset()
	return nil
}

func (n *gorgoniaNet) close() { n.vm.Close() }

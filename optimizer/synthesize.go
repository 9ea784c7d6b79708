package optimizer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/onnx"
)

// SynthesizeOptions configures data-free calibration images.
type SynthesizeOptions struct {
	Images, Batch, Steps int
	LR                   float64
	Threads              int
	Seed                 uint64
	Progress             func(done, total int)
}

// Synthesize makes calibration images from the teacher alone, for users without data (in the
// manner of DeepInversion): random inputs are optimised so that the statistics every
// BatchNormalization sees match its running mean and variance, while the teacher assigns each image
// a chosen class with confidence; a small total-variation term keeps them smooth. Models without
// BN get only the class and smoothness terms. Images stay within [0,1]'s neighbourhood: they are
// clipped to the range seen at the start.
func Synthesize(teacher *onnx.Model, c, h, w int, opt SynthesizeOptions) (*dataset.Set, error) {
	if opt.Images <= 0 {
		opt.Images = 512
	}
	if opt.Batch <= 0 {
		opt.Batch = 64
	}
	if opt.Steps <= 0 {
		opt.Steps = 200
	}
	if opt.LR <= 0 {
		opt.LR = 0.05
	}
	g := teacher.Graph
	type bnStat struct {
		in       string
		mean, vr []float32
	}
	var bns []bnStat
	for _, n := range g.Nodes {
		if n.OpType != "BatchNormalization" || len(n.Inputs) < 5 {
			continue
		}
		mt, ok1 := g.Inits[n.Inputs[3]]
		vt, ok2 := g.Inits[n.Inputs[4]]
		if ok1 && ok2 && mt.Floats != nil && vt.Floats != nil {
			bns = append(bns, bnStat{in: n.Inputs[0], mean: mt.Floats, vr: vt.Floats})
		}
	}
	tr, err := engine.NewTrainer(teacher, engine.TrainOptions{Threads: opt.Threads,
		Trainable: func(*onnx.Node, int) bool { return false }})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	var keep []string
	for _, b := range bns {
		keep = append(keep, b.in)
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 31))
	per := c * h * w
	images := make([]float32, opt.Images*per)
	total := (opt.Images + opt.Batch - 1) / opt.Batch * opt.Steps
	done := 0
	for start := 0; start < opt.Images; start += opt.Batch {
		n := min(opt.Batch, opt.Images-start)
		x := engine.NewTensor([]int{n, c, h, w}, make([]float32, n*per))
		for i := range x.Data {
			x.Data[i] = float32(0.5 + 0.2*rng.NormFloat64())
		}
		labels := make([]int, n)
		var classes int
		m := make([]float64, len(x.Data))
		v := make([]float64, len(x.Data))
		for step := 0; step < opt.Steps; step++ {
			vals, err := tr.ForwardKeep(x, keep...)
			if err != nil {
				return nil, err
			}
			out := vals[g.Outputs[0]]
			if classes == 0 {
				classes = len(out.Data) / n
				// Only class logits have classes to be confident about; other outputs (maps,
				// embeddings) leave the images to the BN statistics alone.
				if ClassifyOutput(g, g.Outputs[0], len(out.Shape), true).Kind != KindLogits {
					classes = -1
				}
				for i := range labels {
					labels[i] = (start + i) % max(classes, 1)
				}
			}
			grads := map[string]*engine.Tensor{}
			if classes > 0 {
				_, ce := engine.CrossEntropy(out, labels)
				grads[g.Outputs[0]] = ce
			}
			for _, b := range bns {
				grads[b.in] = bnMatchGrad(vals[b.in], b.mean, b.vr)
			}
			if err := tr.BackwardFrom(grads); err != nil {
				return nil, fmt.Errorf("synthesis: %w", err)
			}
			gx := tr.InputGrad()
			if gx == nil {
				return nil, fmt.Errorf("synthesis: no gradient reaches the input")
			}
			addTVGrad(x, gx, 1e-4)
			// Adam on the pixels.
			lr := opt.LR * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(opt.Steps)))
			t := float64(step + 1)
			for i, gi := range gx.Data {
				g := float64(gi)
				m[i] = 0.9*m[i] + 0.1*g
				v[i] = 0.999*v[i] + 0.001*g*g
				mh, vh := m[i]/(1-math.Pow(0.9, t)), v[i]/(1-math.Pow(0.999, t))
				x.Data[i] -= float32(lr * mh / (math.Sqrt(vh) + 1e-8))
				x.Data[i] = float32(math.Max(-0.5, math.Min(1.5, float64(x.Data[i]))))
			}
			done++
			if opt.Progress != nil {
				opt.Progress(done, total)
			}
		}
		copy(images[start*per:], x.Data)
	}
	set := dataset.NewSet(opt.Images, c, h, w, images)
	set.Source = "synthesised from the teacher"
	return set, nil
}

// bnMatchGrad is the gradient of Σ_c (mean_c − μ_c)² + (var_c − σ²_c)² over a BN input's channels,
// the distance between the batch statistics of a synthetic batch and the running statistics.
func bnMatchGrad(x *engine.Tensor, mu, sigma2 []float32) *engine.Tensor {
	n, ch := x.Shape[0], x.Shape[1]
	inner := 1
	for _, d := range x.Shape[2:] {
		inner *= d
	}
	cnt := float64(n * inner)
	grad := engine.NewTensor(append([]int(nil), x.Shape...), make([]float32, len(x.Data)))
	for k := 0; k < ch && k < len(mu); k++ {
		var s, q float64
		for b := 0; b < n; b++ {
			for _, val := range x.Data[(b*ch+k)*inner : (b*ch+k+1)*inner] {
				s += float64(val)
				q += float64(val) * float64(val)
			}
		}
		mean := s / cnt
		vr := q/cnt - mean*mean
		dm := 2 * (mean - float64(mu[k]))
		dv := 2 * (vr - float64(sigma2[k]))
		for b := 0; b < n; b++ {
			row := x.Data[(b*ch+k)*inner : (b*ch+k+1)*inner]
			grow := grad.Data[(b*ch+k)*inner : (b*ch+k+1)*inner]
			for i, val := range row {
				// d mean/dx = 1/cnt; d var/dx = 2(x − mean)/cnt
				grow[i] = float32((dm + dv*2*(float64(val)-mean)) / cnt)
			}
		}
	}
	return grad
}

// addTVGrad adds the gradient of a total-variation penalty (squared neighbour differences).
func addTVGrad(x, g *engine.Tensor, weight float64) {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	for p := 0; p < n*c; p++ {
		img := x.Data[p*h*w : (p+1)*h*w]
		gr := g.Data[p*h*w : (p+1)*h*w]
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				v := img[i*w+j]
				if j+1 < w {
					d := float32(weight) * 2 * (v - img[i*w+j+1])
					gr[i*w+j] += d
					gr[i*w+j+1] -= d
				}
				if i+1 < h {
					d := float32(weight) * 2 * (v - img[(i+1)*w+j])
					gr[i*w+j] += d
					gr[(i+1)*w+j] -= d
				}
			}
		}
	}
}

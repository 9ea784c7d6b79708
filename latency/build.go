package latency

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/ort"
	"github.com/chanopt/chanopt/rewrite"
)

// formatVersion changes whenever what a table holds or how it is measured changes, so old cached
// tables are not reused. 4: times are lower quartiles (timingStatistic), not medians, and the
// calibration waits ort.SwitchPause between sessions. 5: block-diagonal grouped convs are timed
// dropping whole groups, as rewrite now cuts them. 6: layers are timed by their kernels in a
// profile, without the reorders into and out of the blocked layout, a kernel's widths side by side
// in one model and every kernel's full width side by side in another (timeParts). 7: the
// profiler's own cost per node taken off (profileOverhead).
const formatVersion = 7

// timingStatistic is the figure of a whole model's timed runs a table keeps: the lower quartile.
// Noise only adds time (another process, the host, a session's threads still spinning). (Layers
// are timed by timeParts; whole models compared with each other, by their medians round by round:
// optimizer's gridFigure.)
func timingStatistic(t ort.Timing) time.Duration { return t.Q1 }

// Options says where and how to measure.
type Options struct {
	// Batch is the batch timed (a symbolic first input dim takes it); 0 means 1.
	Batch int
	// Threads is ONNX Runtime's intra-op thread count; 0 means one per core.
	Threads int
	// Inputs fixes input shapes (for symbolic dims other than the batch).
	Inputs map[string]onnx.Shape
	// CacheDir holds cached tables; "" means $XDG_CACHE_HOME/chanopt/latency (or the platform's
	// user cache folder). NoCache measures afresh and writes nothing.
	CacheDir string
	NoCache  bool
	// Progress, when set, is told how many single-layer models have been timed of how many.
	Progress func(done, total int)
}

// wholeOptions time the whole model once.
var wholeOptions = ort.TimeOptions{Warmup: 3, Runs: 10, Budget: 500 * time.Millisecond}

// CachePath is the file a table with this key is cached in.
func CachePath(dir, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(dir, hex.EncodeToString(sum[:12])+".json")
}

// DefaultCacheDir is $XDG_CACHE_HOME/chanopt/latency, or the platform's user cache folder.
func DefaultCacheDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("latency cache: %w", err)
		}
	}
	return filepath.Join(base, "chanopt", "latency"), nil
}

// Build returns the latency table of the analysed model in ONNX Runtime: from the cache when a table
// with the same key is there, else measured and cached.
func Build(a *rewrite.Analysis, opt Options) (*Table, error) {
	start := time.Now()
	src := a.Model
	name := src.Path
	if name == "" {
		name = "model"
	}
	if err := ort.Available(); err != nil {
		return nil, fmt.Errorf("latency table of %s: %w", name, err)
	}
	if opt.Batch <= 0 {
		opt.Batch = 1
	}
	if opt.Threads <= 0 {
		opt.Threads = runtime.NumCPU()
	}
	inputs, err := fixInputs(src.Graph, opt)
	if err != nil {
		return nil, fmt.Errorf("latency table of %s: %w", name, err)
	}
	mp, err := src.Export()
	if err != nil {
		return nil, fmt.Errorf("latency table of %s: %w", name, err)
	}
	modelBytes, err := onnx.Encode(mp)
	if err != nil {
		return nil, fmt.Errorf("latency table of %s: %w", name, err)
	}
	version, _ := ort.Version()
	t := &Table{Runtime: "ort", Version: version, Threads: opt.Threads, Batch: opt.Batch, Inputs: map[string][]int64{}}
	for n, s := range inputs {
		t.Inputs[n] = s.Sizes()
	}
	t.Key = tableKey(modelBytes, t)
	dir := opt.CacheDir
	if dir == "" && !opt.NoCache {
		if dir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if !opt.NoCache {
		if cached, err := readCached(CachePath(dir, t.Key), t.Key); err == nil {
			return cached, nil
		}
	}
	m := src.Clone() // inference at the timed shapes must not change the caller's model
	if _, err := onnx.InferShapes(m, onnx.InferOptions{Inputs: inputs, Lenient: true}); err != nil {
		return nil, fmt.Errorf("latency table of %s: %w", name, err)
	}
	if err := t.measure(a, m, modelBytes, name, opt); err != nil {
		return nil, err
	}
	if err := t.calibrate(a, modelBytes, name, opt.Threads); err != nil {
		return nil, err
	}
	t.BuildSeconds = time.Since(start).Seconds()
	if !opt.NoCache {
		if err := writeCached(CachePath(dir, t.Key), t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// fixInputs gives every graph input a static shape: the shape given, or the declared one with a
// symbolic first dim set to the batch.
func fixInputs(g *onnx.Graph, opt Options) (map[string]onnx.Shape, error) {
	out := map[string]onnx.Shape{}
	for _, in := range g.Inputs {
		s := opt.Inputs[in]
		if s == nil {
			v := g.Values[in]
			if v == nil || v.Shape == nil {
				return nil, fmt.Errorf("input %s has no declared shape: give one", in)
			}
			s = v.Shape.Clone()
			if len(s) > 0 && !s[0].Known() {
				s[0] = onnx.D(int64(opt.Batch))
			}
		}
		if !s.Static() {
			return nil, fmt.Errorf("input %s has shape %v: give its free dims", in, s)
		}
		out[in] = s
	}
	return out, nil
}

// tableKey names what a table depends on: the model's bytes, the runtime and its version, threads,
// batch, input shapes, and how tables are measured.
func tableKey(model []byte, t *Table) string {
	sum := sha256.Sum256(model)
	names := make([]string, 0, len(t.Inputs))
	for n := range t.Inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	key := fmt.Sprintf("v%d model=%s runtime=%s-%s threads=%d batch=%d", formatVersion, hex.EncodeToString(sum[:]),
		t.Runtime, t.Version, t.Threads, t.Batch)
	for _, n := range names {
		key += fmt.Sprintf(" %s=%v", n, t.Inputs[n])
	}
	return key
}

func readCached(path, key string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	if t.Key != key {
		return nil, errors.New("key differs")
	}
	return &t, nil
}

func writeCached(path string, t *Table) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("latency cache: %w", err)
	}
	b, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		return err
	}
	return onnx.WriteAtomic(path, append(b, '\n'), false)
}

// measure times the whole model and profiles its layers' share of its time, then times every
// kernel along its ladders (its widths side by side), then every kernel at full width (side by
// side).
func (t *Table) measure(a *rewrite.Analysis, m *onnx.Model, modelBytes []byte, name string, opt Options) error {
	whole, ins, err := timeModel(name, modelBytes, t.Inputs, m.Graph.Inputs, opt.Threads, wholeOptions)
	if err != nil {
		return fmt.Errorf("latency table: %w", err)
	}
	t.FullMS, t.FullSpreadMS = ms(timingStatistic(whole)), ms(whole.Spread())
	overhead, err := profileOverhead(m.Opset(), opt.Threads)
	if err != nil {
		return fmt.Errorf("latency table: %w", err)
	}
	t.ProfileOverheadUS = float64(overhead) / float64(time.Microsecond)
	if t.LayerShare, err = layerShare(name, modelBytes, ins, opt.Threads, overhead); err != nil {
		return fmt.Errorf("latency table: %w", err)
	}

	consumers, producers := map[string][]*rewrite.Group{}, map[string][]*rewrite.Group{}
	for _, g := range a.Prunable() {
		for _, n := range g.Consumers {
			consumers[n] = append(consumers[n], g)
		}
		for _, n := range g.Producers {
			producers[n] = append(producers[n], g)
		}
	}
	side := func(full int, groups []*rewrite.Group, flatten bool) Side {
		s := Side{Full: full, Multiplier: 1}
		total := 0
		for _, g := range groups {
			s.Groups = append(s.Groups, g.ID)
			s.Channels = append(s.Channels, g.Channels)
			total += g.Channels
		}
		if flatten && total > 0 && full > total && full%total == 0 {
			s.Multiplier = full / total
		}
		return s
	}
	layers := findLayers(m.Graph)
	bySig := map[string]int{}
	// cut holds one layer per kernel: the one its single-layer models are cut from.
	var cut []*layer
	needIn, needOut := map[int]int{}, map[int]int{} // kernel → ladder unit
	for _, l := range layers {
		n := l.nodes[0]
		sig := l.signature(m.Graph)
		k, ok := bySig[sig]
		if !ok {
			k = len(t.Kernels)
			bySig[sig] = k
			t.Kernels = append(t.Kernels, Kernel{Op: n.OpType, In: l.inFull, Out: l.outFull, Diagonal: l.diagonal, Signature: sig})
			cut = append(cut, l)
		}
		entry := Layer{Kernel: k, In: side(l.inFull, consumers[n.Label()], n.OpType != "Conv"),
			Out: side(l.outFull, producers[n.Label()], false), Plane: l.plane(m.Graph)}
		if l.diagonal {
			entry.In = Side{Full: l.inFull, Multiplier: 1}
		}
		for _, x := range l.nodes {
			entry.Nodes = append(entry.Nodes, x.Label())
		}
		t.Layers = append(t.Layers, entry)
		if len(entry.In.Groups) > 0 {
			needIn[k] = max(l.group, entry.In.Multiplier)
		}
		if len(entry.Out.Groups) > 0 {
			needOut[k] = l.group
			if l.diagonal {
				needOut[k] = l.outFull / l.group // whole blocks
			}
		}
	}
	total := 0
	plans := make([][]branch, len(t.Kernels))
	for k := range t.Kernels {
		kn := &t.Kernels[k]
		plan := []branch{{kn.In, kn.Out}}
		if unit, ok := needIn[k]; ok {
			for _, w := range ladder(kn.In, unit) {
				if w != kn.In {
					plan = append(plan, branch{w, kn.Out})
				}
			}
		}
		if unit, ok := needOut[k]; ok {
			for _, w := range ladder(kn.Out, unit) {
				switch {
				case w == kn.Out:
				case kn.Diagonal:
					plan = append(plan, branch{w, w})
				default:
					plan = append(plan, branch{kn.In, w})
				}
			}
		}
		plans[k] = plan
		total += len(plan)
	}
	// Every kernel at full width side by side first (their shares of the model's time), then each
	// kernel's ladder as ratios to its full width, every width in the same runs.
	fulls := make([]part, len(t.Kernels))
	for k := range t.Kernels {
		fulls[k] = part{cut[k], plans[k][0]}
	}
	fullMS, err := timeSideBySide(m, fulls, uint64(len(t.Kernels)), opt.Threads, overhead, fullOptions)
	if err != nil {
		return fmt.Errorf("latency table: the layers at full width: %w", err)
	}
	done := len(t.Kernels)
	total += done
	if opt.Progress != nil {
		opt.Progress(done, total)
	}
	for k, plan := range plans {
		kn := &t.Kernels[k]
		kn.FullMS = fullMS[k]
		parts := make([]part, len(plan))
		for i, br := range plan {
			parts[i] = part{cut[k], br}
		}
		times, err := timeSideBySide(m, parts, uint64(k), opt.Threads, overhead, ladderOptions)
		if err != nil {
			return fmt.Errorf("latency table: %s: %w", cut[k].nodes[0].Label(), err)
		}
		for i, br := range plan[1:] {
			p := Point{Width: br.out, MS: kn.FullMS * times[i+1] / times[0]}
			if br.out == kn.Out && !kn.Diagonal {
				p.Width = br.in
				kn.InLadder = append(kn.InLadder, p)
			} else {
				kn.OutLadder = append(kn.OutLadder, p)
			}
		}
		t.Measurements += len(plan)
		done += len(plan)
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
	}
	for k := range t.Kernels {
		kn := &t.Kernels[k]
		if len(kn.InLadder) > 0 {
			kn.InLadder = append(kn.InLadder, Point{Width: kn.In, MS: kn.FullMS})
			sortPoints(kn.InLadder)
		}
		if len(kn.OutLadder) > 0 {
			kn.OutLadder = append(kn.OutLadder, Point{Width: kn.Out, MS: kn.FullMS})
			sortPoints(kn.OutLadder)
		}
	}
	return nil
}

func sortPoints(p []Point) { sort.Slice(p, func(i, j int) bool { return p[i].Width < p[j].Width }) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ladderOptions time a kernel's widths side by side, fullOptions every kernel at full width side
// by side: a warm-up, then at least 15 runs, more within the budget, at most 100 (a profile keeps
// every node of every run).
var (
	ladderOptions = ort.TimeOptions{Warmup: 2, Runs: 15, Budget: 60 * time.Millisecond, MaxRuns: 100}
	fullOptions   = ort.TimeOptions{Warmup: 2, Runs: 15, Budget: time.Second, MaxRuns: 100}
)

// sideBySideBytes bounds the tensors of one model of parts side by side (every part's input and
// output is the model's own): a 224×224 net's layers at batch 64 would need gigabytes at once.
var sideBySideBytes int64 = 256 << 20

// timeSideBySide times the parts side by side, in as few models as fit sideBySideBytes: each model
// after the first also holds the first model's costliest part, and its times are scaled by that
// part's time there over its time in the first, so all compare as if timed in the same runs.
func timeSideBySide(src *onnx.Model, parts []part, seed uint64, threads int, overhead time.Duration, opt ort.TimeOptions) ([]float64, error) {
	bytes := func(p part) int64 {
		in := p.l.input.NumElements() / int64(p.l.inFull) * int64(p.br.in)
		return 4 * (in + p.l.plane(src.Graph)*int64(p.br.out))
	}
	var chunks [][]int
	var size int64
	for i, p := range parts {
		if len(chunks) == 0 || size+bytes(p) > sideBySideBytes && len(chunks[len(chunks)-1]) > 0 {
			chunks = append(chunks, nil)
			size = 0
		}
		chunks[len(chunks)-1] = append(chunks[len(chunks)-1], i)
		size += bytes(p)
	}
	out := make([]float64, len(parts))
	ref, refMS := -1, 0.0
	for c, chunk := range chunks {
		members := slices.Clone(chunk)
		if c > 0 {
			members = append(members, ref)
		}
		ps := make([]part, len(members))
		for j, i := range members {
			ps[j] = parts[i]
		}
		times, err := timeParts(src, ps, seed+uint64(c), threads, overhead, opt)
		if err != nil {
			return nil, err
		}
		scale := 1.0
		if c == 0 {
			for j, i := range chunk {
				if times[j] > refMS {
					ref, refMS = i, times[j]
				}
			}
		} else {
			scale = refMS / times[len(times)-1]
		}
		for j, i := range chunk {
			out[i] = times[j] * scale
		}
	}
	return out, nil
}

// cutOnlyOps are the ops ONNX Runtime adds to a cut model that the layers do not run inside the
// network: the conversions of the model's inputs and outputs to and from the blocked NCHWc layout
// (see ort.ProfileRuns). A part's time is its other nodes' kernel time.
var cutOnlyOps = []string{"ReorderInput", "ReorderOutput"}

// timeParts cuts the parts into one model, profiles it, and returns each part's time in ms: its
// nodes' kernel time averaged over the runs, leaving out the slowest quarter of the runs (by their
// total) as taken while the machine was busy.
func timeParts(src *onnx.Model, parts []part, seed uint64, threads int, overhead time.Duration, opt ort.TimeOptions) ([]float64, error) {
	model, err := cut(src, parts, seed)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var data []float32 // random input values, grown to the largest input and shared by every part
	inputs := make([]ort.Tensor, len(parts))
	for i, p := range parts {
		shape := p.l.input.Sizes()
		shape[p.l.channelAxis()] = int64(p.br.in)
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		for len(data) < n {
			data = append(data, float32(rng.NormFloat64()))
		}
		inputs[i] = ort.Tensor{Shape: shape, Data: data[:n]}
	}
	name := fmt.Sprintf("%s cut at %d→%d", parts[0].l.nodes[0].Label(), parts[0].br.in, parts[0].br.out)
	if len(parts) > 1 {
		name += fmt.Sprintf(" and %d more", len(parts)-1)
	}
	runs, err := ort.ProfileRuns(name, model, threads, inputs, opt)
	if err != nil {
		return nil, err
	}
	perRun := make([][]float64, len(runs))
	totals := make([]float64, len(runs))
	for r, nodes := range runs {
		perRun[r] = make([]float64, len(parts))
		for _, n := range nodes {
			if slices.Contains(cutOnlyOps, n.Op) {
				continue
			}
			i, ok := partOf(n.Node)
			if !ok || i >= len(parts) {
				return nil, fmt.Errorf("%s: ONNX Runtime ran node %s (%s), which is in no part", name, n.Node, n.Op)
			}
			d := ms(kernelTime(n.Dur, overhead))
			perRun[r][i] += d
			totals[r] += d
		}
	}
	order := make([]int, len(runs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return totals[order[a]] < totals[order[b]] })
	kept := order[:max(1, len(order)-len(order)/4)]
	out := make([]float64, len(parts))
	for _, r := range kept {
		for i, v := range perRun[r] {
			out[i] += v / float64(len(kept))
		}
	}
	for i, v := range out {
		if v <= 0 {
			return nil, fmt.Errorf("%s: part %d (%s at %d→%d) has no kernel time in the profile", name, i,
				parts[i].l.nodes[0].Label(), parts[i].br.in, parts[i].br.out)
		}
	}
	return out, nil
}

// kernelTime is a node's kernel time in a profile without the profiler's own cost, at least a
// microsecond (the profile's resolution).
func kernelTime(d, overhead time.Duration) time.Duration {
	return max(d-overhead, time.Microsecond)
}

// profileOverhead is what ONNX Runtime's profiler adds to a node's kernel time: the median kernel
// time of a conv with next to no work (8 channels to 8 on one pixel). On a 2-vCPU VM it was 5–6 µs
// at one and two threads, where such a conv runs in about one; mobilenet_v3_small's 150 nodes run
// in about 1.5 ms, so uncorrected its narrow layers' times, and the elementwise nodes', look
// several times what they are, and the table prices them wrong.
func profileOverhead(opset int64, threads int) (time.Duration, error) {
	const c = 8
	g := &onnx.Graph{Name: "probe", Values: map[string]*onnx.Value{}, Inits: map[string]*onnx.Tensor{}}
	g.Inputs = []string{"x"}
	g.Values["x"] = &onnx.Value{Name: "x", Type: onnx.Float, Shape: onnx.Shape{onnx.D(1), onnx.D(c), onnx.D(1), onnx.D(1)}}
	w := make([]float32, c*c)
	for i := range w {
		w[i] = float32(i%3) - 1
	}
	g.Inits["w"] = onnx.NewFloatTensor("w", []int64{c, c, 1, 1}, w)
	g.InitOrder = []string{"w"}
	g.Nodes = []*onnx.Node{{Name: "probe", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"y"}, Attrs: map[string]*onnx.Attr{}}}
	g.Outputs = []string{"y"}
	g.Values["y"] = &onnx.Value{Name: "y", Type: onnx.Float}
	mp, err := (&onnx.Model{Opsets: map[string]int64{"": opset}, Graph: g}).Export()
	if err != nil {
		return 0, fmt.Errorf("profiler probe: %w", err)
	}
	b, err := onnx.Encode(mp)
	if err != nil {
		return 0, fmt.Errorf("profiler probe: %w", err)
	}
	x := make([]float32, c)
	runs, err := ort.ProfileRuns("profiler probe", b, threads, []ort.Tensor{{Shape: []int64{1, c, 1, 1}, Data: x}},
		ort.TimeOptions{Warmup: 5, Runs: 100})
	if err != nil {
		return 0, err
	}
	var ds []time.Duration
	for _, r := range runs {
		for _, n := range r {
			if !slices.Contains(cutOnlyOps, n.Op) {
				ds = append(ds, n.Dur)
			}
		}
	}
	if len(ds) == 0 {
		return 0, fmt.Errorf("profiler probe: no kernel time in the profile")
	}
	return ort.Summarize(ds).Median, nil
}

// timeModel times the whole model on random inputs of the fixed shapes, and returns the inputs.
func timeModel(name string, model []byte, shapes map[string][]int64, order []string, threads int, opt ort.TimeOptions) (ort.Timing, []ort.Tensor, error) {
	s, err := ort.OpenBytes(name, model, threads)
	if err != nil {
		return ort.Timing{}, nil, err
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	ins := make([]ort.Tensor, len(s.Inputs))
	for i, in := range s.Inputs {
		shape := shapes[in]
		if shape == nil {
			return ort.Timing{}, nil, fmt.Errorf("%s: ONNX Runtime wants input %s, not among %v", name, in, order)
		}
		n := 1
		for _, d := range shape {
			n *= int(d)
		}
		data := make([]float32, n)
		for j := range data {
			data[j] = float32(rng.NormFloat64())
		}
		ins[i] = ort.Tensor{Shape: shape, Data: data}
	}
	tm, err := s.Time(ins, opt)
	return tm, ins, err
}

// layerOps are the ops ONNX Runtime runs a table's layers as (a Conv or Gemm with what it fuses,
// in the plain or the blocked layout); every other op of a profile is the model's elementwise
// work (activations it does not fuse, SE gates, pooling, residual adds, reorders).
var layerOps = []string{"Conv", "FusedConv", "NhwcFusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}

// shareOptions profile the whole model for LayerShare.
var shareOptions = ort.TimeOptions{Warmup: 3, Runs: 10, Budget: 500 * time.Millisecond, MaxRuns: 40}

// layerShare profiles the whole model and returns the layers' share of its nodes' kernel time.
func layerShare(name string, model []byte, inputs []ort.Tensor, threads int, overhead time.Duration) (float64, error) {
	runs, err := ort.ProfileRuns(name, model, threads, inputs, shareOptions)
	if err != nil {
		return 0, err
	}
	var layers, all time.Duration
	for _, r := range runs {
		for _, n := range r {
			d := kernelTime(n.Dur, overhead)
			all += d
			if slices.Contains(layerOps, n.Op) {
				layers += d
			}
		}
	}
	if all <= 0 {
		return 0, fmt.Errorf("%s: the profile holds no kernel time", name)
	}
	return float64(layers) / float64(all), nil
}

// calibrationFraction and calibrationGrid set the uniform cut the table is calibrated on: half
// of every prunable group, on multiples of 16.
const (
	calibrationFraction = 0.5
	calibrationGrid     = 16
)

// calibrationTiming is how long the original and the uniform cut are timed, alternately.
var calibrationTiming = 2 * time.Second

// calibrate times the whole model and a uniform cut of it alternately and sets the slope that
// maps the layers' raw ratio onto the measured one. Single-layer models carry costs the whole
// model does not (a run's fixed overhead, reorders into and out of the blocked layout at both
// ends) and these do not shrink with width, so summed layer times understate what a cut saves.
func (t *Table) calibrate(a *rewrite.Analysis, modelBytes []byte, name string, threads int) error {
	widths := map[rewrite.GroupID]int{}
	keep := rewrite.Keep{}
	for _, g := range a.Prunable() {
		unit := calibrationGrid * g.Step() / gcd(calibrationGrid, g.Step())
		w := max(unit, int(math.Round(calibrationFraction*float64(g.Channels)/float64(unit)))*unit)
		if w >= g.Channels {
			continue
		}
		widths[g.ID] = w
		keep[g.ID] = spreadChannels(g, w)
	}
	t.Slope = 1
	raw := t.rawRatio(widths)
	if len(widths) == 0 || raw >= 1 {
		return nil
	}
	cut, err := a.Slice(keep)
	if err != nil {
		return fmt.Errorf("latency table: calibration cut: %w", err)
	}
	mp, err := cut.Export()
	if err != nil {
		return fmt.Errorf("latency table: calibration cut: %w", err)
	}
	cutBytes, err := onnx.Encode(mp)
	if err != nil {
		return fmt.Errorf("latency table: calibration cut: %w", err)
	}
	ts, err := timeAlternately([]string{name, name + " at half width"}, [][]byte{modelBytes, cutBytes}, t.Inputs, threads, calibrationTiming)
	if err != nil {
		return fmt.Errorf("latency table: %w", err)
	}
	measured := float64(ts[1]) / float64(ts[0])
	t.Calibration = &Calibration{Widths: widths, RawRatio: raw, MeasuredRatio: measured}
	// Clamped: one busy spell must not bend every prediction far.
	t.Slope = min(maxSlope, max(1/maxSlope, (1-measured)/(1-raw)))
	return nil
}

// maxSlope bounds the calibration's slope (and its inverse).
const maxSlope = 2

// spreadChannels keeps w channels of g spread evenly over its channels (w/Blocks of each block of
// a grouped conv, spread over the block, or whole blocks spread over the blocks): which channels
// does not change the time, but the first w alone can empty an output of a Split the group runs
// through (resnext's blocks).
func spreadChannels(g *rewrite.Group, w int) []int {
	if g.Blocks > 1 {
		members := g.BlockMembers()
		var out []int
		if g.Whole {
			for _, b := range spread(identity(g.Blocks), w/g.Step()) {
				out = append(out, members[b]...)
			}
		} else {
			for _, m := range members {
				out = append(out, spread(m, w/g.Blocks)...)
			}
		}
		sort.Ints(out)
		return out
	}
	return spread(identity(g.Channels), w)
}

// identity is 0, 1, …, n-1.
func identity(n int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = i
	}
	return v
}

// spread picks k of the values evenly spaced, in order.
func spread(values []int, k int) []int {
	out := make([]int, 0, k)
	for i := 0; i < k && i < len(values); i++ {
		out = append(out, values[i*len(values)/k])
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// timeAlternately times the models in rounds, each in turn (a pause, an untimed run, three timed
// runs), after a warm-up round: at least 5 rounds and more while budget lasts. It returns each
// model's time (timingStatistic).
func timeAlternately(names []string, models [][]byte, shapes map[string][]int64, threads int, budget time.Duration) ([]time.Duration, error) {
	var runners []*ort.Runner
	var sessions []*ort.Session
	defer func() {
		for _, r := range runners {
			r.Close()
		}
		for _, s := range sessions {
			s.Close()
		}
	}()
	for i, b := range models {
		s, err := ort.OpenBytes(names[i], b, threads)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, s)
		rng := rand.New(rand.NewPCG(1, 2))
		ins := make([]ort.Tensor, len(s.Inputs))
		for j, in := range s.Inputs {
			shape := shapes[in]
			if shape == nil {
				return nil, fmt.Errorf("%s: no shape for input %s", names[i], in)
			}
			n := 1
			for _, d := range shape {
				n *= int(d)
			}
			data := make([]float32, n)
			for k := range data {
				data[k] = float32(rng.NormFloat64())
			}
			ins[j] = ort.Tensor{Shape: shape, Data: data}
		}
		r, err := s.Runner(ins)
		if err != nil {
			return nil, err
		}
		runners = append(runners, r)
	}
	samples := make([][]time.Duration, len(runners))
	start := time.Now()
	for round := 0; round < 1+5 || (time.Since(start) < budget && round < 500); round++ {
		for i, r := range runners {
			// A pause and an untimed run first: the other session's idle threads spin a while.
			time.Sleep(ort.SwitchPause)
			for k := 0; k < 4; k++ {
				d, err := r.Once()
				if err != nil {
					return nil, err
				}
				if round >= 1 && k > 0 {
					samples[i] = append(samples[i], d)
				}
			}
		}
	}
	out := make([]time.Duration, len(runners))
	for i := range samples {
		out[i] = timingStatistic(ort.Summarize(samples[i]))
	}
	return out, nil
}

package engine

import (
	"fmt"
	"slices"
)

// concatGrad is Concat's backward: each input's gradient is its slab of dy.
type concatGrad struct{ axis int }

func (g *concatGrad) backward(_ *ctx, a *gradArgs) error {
	dy := a.dout[0]
	if dy == nil {
		return nil
	}
	ax, err := normAxis(g.axis, len(dy.Shape))
	if err != nil {
		return err
	}
	outer := numel(dy.Shape[:ax])
	rowOut := numel(dy.Shape[ax:])
	off := 0
	for i, x := range a.in {
		if x == nil {
			continue
		}
		row := numel(x.Shape[ax:])
		if dx := a.din[i]; dx != nil {
			for o := 0; o < outer; o++ {
				addOrSet(dx.Data[o*row:(o+1)*row], dy.Data[o*rowOut+off:o*rowOut+off+row], a.acc[i])
			}
		}
		off += row
	}
	return nil
}

// splitGrad is Split's backward: dx is the outputs' gradients side by side (zero for outputs no
// gradient reached).
type splitGrad struct{ axis int }

func (g *splitGrad) backward(_ *ctx, a *gradArgs) error {
	dx := a.din[0]
	if dx == nil {
		return nil
	}
	x := a.in[0]
	ax, err := normAxis(g.axis, len(x.Shape))
	if err != nil {
		return err
	}
	outer := numel(x.Shape[:ax])
	inner := numel(x.Shape[ax+1:])
	rowIn := x.Shape[ax] * inner
	off := 0
	for j, y := range a.out {
		if y == nil {
			continue
		}
		row := y.Shape[ax] * inner
		for o := 0; o < outer; o++ {
			dst := dx.Data[o*rowIn+off : o*rowIn+off+row]
			switch {
			case a.dout[j] != nil:
				addOrSet(dst, a.dout[j].Data[o*row:(o+1)*row], a.acc[0])
			case !a.acc[0]:
				clear(dst)
			}
		}
		off += row
	}
	return nil
}

// gatherGrad is the backward of ops whose every output element is a copy of one input element
// or a constant (Slice, Transpose, Pad, nearest Resize, Gather, Expand, Tile, DepthToSpace,
// SpaceToDepth): at plan time the forward op runs on probe inputs that encode each element's
// index, which yields the source index of every output element; the backward adds dy into dx at
// those indices.
type gatherGrad struct {
	fwd       op
	shape     []int
	src       []int32 // per output element: the input element it copies, or −1
	injective bool    // no input element is copied twice
	covering  bool    // every input element is copied (exactly once when injective)
	// run state
	dy, dx []float32
	acc    bool
	rt     rangeTask
}

func (g *gatherGrad) prepare(c *ctx, in, out []*Tensor) error {
	x := in[0]
	if slices.Equal(g.shape, x.Shape) && g.src != nil {
		return nil
	}
	n := x.Len()
	if int64(n) >= 1<<31 {
		return fmt.Errorf("input %v is too large", x.Shape)
	}
	probeIn := append([]*Tensor(nil), in...)
	probe := &Tensor{Shape: x.Shape, Data: newFloats(n)}
	probeIn[0] = probe
	specs, err := g.fwd.infer(probeIn)
	if err != nil {
		return err
	}
	outs := make([]*Tensor, len(out))
	for j := range outs {
		if j < len(specs) {
			outs[j] = allocFor(specs[j])
		}
	}
	m := outs[0].Len()
	runWith := func(f func(i int) float32) ([]float32, error) {
		for i := range probe.Data {
			probe.Data[i] = f(i)
		}
		if so, ok := g.fwd.(scratchOp); ok {
			p, s := so.scratch(probeIn, c.threads)
			if len(c.shared) < s || len(c.scratch) > 0 && len(c.scratch[0]) < p {
				return nil, fmt.Errorf("internal: probe needs scratch")
			}
		}
		if err := g.fwd.run(c, probeIn, outs); err != nil {
			return nil, err
		}
		return append([]float32(nil), outs[0].Data[:m]...), nil
	}
	one, err := runWith(func(int) float32 { return 1 })
	if err != nil {
		return err
	}
	two, err := runWith(func(int) float32 { return 2 })
	if err != nil {
		return err
	}
	lo, err := runWith(func(i int) float32 { return float32(i & 4095) })
	if err != nil {
		return err
	}
	hi, err := runWith(func(i int) float32 { return float32(i >> 12) })
	if err != nil {
		return err
	}
	g.src = make([]int32, m)
	hits := make([]int32, n)
	for j := range g.src {
		g.src[j] = -1
		if one[j] == 1 && two[j] == 2 {
			s := int(hi[j])<<12 + int(lo[j])
			if s < 0 || s >= n {
				return fmt.Errorf("internal: probe found source %d of %d", s, n)
			}
			g.src[j] = int32(s)
			hits[s]++
		}
	}
	g.injective, g.covering = true, true
	for _, h := range hits {
		g.injective = g.injective && h <= 1
		g.covering = g.covering && h >= 1
	}
	g.shape = append(g.shape[:0], x.Shape...)
	g.rt.fn = g.scatter
	return nil
}

func (g *gatherGrad) backward(c *ctx, a *gradArgs) error {
	dx, dy := a.din[0], a.dout[0]
	if dx == nil || dy == nil {
		return nil
	}
	if err := g.prepare(c, a.in, a.out); err != nil { // another input shape ran since
		return err
	}
	if len(g.src) != dy.Len() {
		return fmt.Errorf("internal: backward prepared for %d outputs, dy has %d", len(g.src), dy.Len())
	}
	g.dy, g.dx, g.acc = dy.Data, dx.Data, a.acc[0]
	if !(g.injective && g.covering && !g.acc) {
		zeroUnlessAcc(dx, g.acc)
		g.acc = true
	}
	if g.injective {
		c.parallelRange(len(g.src), len(g.src), &g.rt)
	} else {
		g.scatter(0, len(g.src))
	}
	g.dy, g.dx = nil, nil
	return nil
}

func (g *gatherGrad) scatter(lo, hi int) {
	dy := g.dy[lo:hi]
	if g.acc {
		for j, s := range g.src[lo:hi] {
			if s >= 0 {
				g.dx[s] += dy[j]
			}
		}
		return
	}
	for j, s := range g.src[lo:hi] {
		if s >= 0 {
			g.dx[s] = dy[j]
		}
	}
}

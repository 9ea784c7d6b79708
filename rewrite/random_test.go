package rewrite_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/rewrite"
)

// randomNet chains random blocks of the patterns the rule tests cover one at a time (convs of
// every kind, BN, residual adds, concats, dense connections, splits, SE gates, channel slices,
// per-channel scales, NHWC round trips, PRelu, and the pinned LRN and channel shuffle) and ends in
// a conv or a classifier head, so the rules meet each other in combinations. Activations keep
// f(0) = 0 so that masking a channel silences it.
func randomNet(seed uint64) *graphBuilder {
	b := newGraph(seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	cur := b.input("x", 2, 3, 6, 6)
	c := int64(3)
	id := 0
	name := func(p string) string { id++; return fmt.Sprintf("%s%d", p, id) }
	width := func() int64 { return 2 * (2 + rng.Int64N(3)) } // 4, 6 or 8
	w := width()
	cur, c = b.conv(name("conv"), cur, c, w, 3, 1), w
	blocks := 3 + rng.IntN(5)
	for i := 0; i < blocks; i++ {
		switch rng.IntN(16) {
		case 0: // conv
			w := width()
			cur, c = b.conv(name("conv"), cur, c, w, 1+2*rng.Int64N(2), 1), w
		case 1: // depthwise conv
			cur = b.conv(name("dw"), cur, c, c, 3, c)
		case 2: // grouped conv, 2 groups
			w := width()
			cur, c = b.conv(name("gconv"), cur, c, w, 3, 2), w
		case 3: // BN and an activation
			cur = b.batchNorm(name("bn"), cur, c)
			cur = b.op([]string{"Relu", "Tanh"}[rng.IntN(2)], name("act"), []string{cur}) // f(0) = 0, so a masked channel stays silent
		case 4: // residual
			body := b.conv(name("conv"), b.op("Relu", name("act"), []string{cur}), c, c, 3, 1)
			cur = b.op("Add", name("add"), []string{body, cur})
		case 5: // concat of two branches
			w1, w2 := width(), width()
			cur = b.op("Concat", name("cat"), []string{b.conv(name("conv"), cur, c, w1, 1, 1), b.conv(name("conv"), cur, c, w2, 3, 1)},
				integer("axis", 1))
			c = w1 + w2
		case 6: // split into two branches joined again
			s := 1 + rng.Int64N(c-1)
			sa, sb := name("split"), name("part")
			b.node("Split", []string{cur}, []string{sa, sb}, integer("axis", 1), ints("split", s, c-s))
			w := width()
			cur = b.op("Add", name("add"), []string{b.conv(name("conv"), sa, s, w, 3, 1), b.conv(name("conv"), sb, c-s, w, 1, 1)})
			c = w
		case 7: // SE gate
			p := b.op("GlobalAveragePool", name("gap"), []string{cur})
			s := b.op("Relu", name("act"), []string{b.conv(name("se"), p, c, 2, 1, 1)})
			g := b.op("Sigmoid", name("gate"), []string{b.conv(name("se"), s, 2, c, 1, 1)})
			cur = b.op("Mul", name("mul"), []string{cur, g})
		case 8: // keep the middle channels
			if c >= 4 {
				cur = b.op("Slice", name("slice"), []string{cur}, ints("starts", 1), ints("ends", c-1), ints("axes", 1))
				c -= 2
			}
		case 9: // per-channel scale
			cur = b.op("Mul", name("scale"), []string{cur, b.weight(name("k"), 1, c, 1, 1)})
		case 10: // dense connection: the input concatenated with new features
			w := width()
			cur = b.op("Concat", name("dense"), []string{cur, b.conv(name("conv"), cur, c, w, 3, 1)}, integer("axis", 1))
			c += w
		case 11: // NHWC round trip
			t := b.op("Transpose", name("nhwc"), []string{cur}, ints("perm", 0, 2, 3, 1))
			cur = b.op("Transpose", name("nchw"), []string{b.op("Relu", name("act"), []string{t})}, ints("perm", 0, 3, 1, 2))
		case 12: // transposed conv, same size
			w := width()
			cur = b.op("ConvTranspose", name("deconv"), []string{cur, b.weight(name("dw"), c, w, 3, 3), b.weight(name("db"), w)},
				ints("kernel_shape", 3, 3), ints("pads", 1, 1, 1, 1))
			c = w
		case 13: // PRelu with a slope per channel
			cur = b.op("PRelu", name("prelu"), []string{cur, b.weight(name("slope"), c, 1, 1)})
		case 14: // LRN: opaque, pins what it reads and makes
			cur = b.op("LRN", name("lrn"), []string{cur}, integer("size", 3))
		case 15: // channel shuffle in 2 groups: pinned
			if c%2 == 0 {
				r := b.op("Reshape", name("shuf"), []string{cur}, ints("shape", 2, 2, c/2, 6, 6))
				t := b.op("Transpose", name("perm"), []string{r}, ints("perm", 0, 2, 1, 3, 4))
				cur = b.op("Reshape", name("unshuf"), []string{t}, ints("shape", 2, c, 6, 6))
			}
		}
	}
	switch rng.IntN(3) {
	case 0:
		b.output(b.conv(name("head"), cur, c, 3, 3, 1))
	case 1:
		f := b.op("Flatten", name("flat"), []string{cur}, integer("axis", 1))
		b.output(b.op("Gemm", name("fc"), []string{f, b.weight("fc.w", 5, c*36), b.weight("fc.b", 5)}, integer("transB", 1)))
	default:
		f := b.op("Flatten", name("flat"), []string{b.op("GlobalAveragePool", name("gap"), []string{cur})}, integer("axis", 1))
		b.output(b.op("Gemm", name("fc"), []string{f, b.weight("fc.w", 5, c), b.weight("fc.b", 5)}, integer("transB", 1)))
	}
	return b
}

// randomCut keeps a random non-empty subset of each prunable group, the same count in each block
// (or whole blocks).
func randomCut(a *rewrite.Analysis, rng *rand.Rand) rewrite.Keep {
	return keepRandomly(a, rng, func(n int) int { return 1 + rng.IntN(n) })
}

// TestRandomNetsSliceExactly: on random nets the rules must find groups that Slice can cut at any
// widths, and the slim net must compute what the original computes with the dropped channels
// masked. FuzzRandomNets explores more seeds (go test -fuzz FuzzRandomNets ./rewrite).
func TestRandomNetsSliceExactly(t *testing.T) {
	cut := 0
	for seed := uint64(1); seed <= 150; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { cut += checkRandomNet(t, seed) })
	}
	if cut < 150 {
		t.Errorf("only %d groups cut over 150 nets", cut)
	}
}

func FuzzRandomNets(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { checkRandomNet(t, seed) })
}

// checkRandomNet analyses, cuts, slices and masks the random net of seed and compares the slim and
// masked outputs and the slim filters; it returns the number of groups cut.
func checkRandomNet(t *testing.T, seed uint64) int {
	m := randomNet(seed).model()
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	// A random cut may keep none of the channels a Slice or a Split output takes, which Slice
	// refuses; draw again then.
	rng := rand.New(rand.NewPCG(seed, 5))
	var keep rewrite.Keep
	var slim *onnx.Model
	for try := 0; ; try++ {
		keep = randomCut(a, rng)
		slim, err = a.Slice(keep)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "the cut keeps no channel of") || try == 50 {
			t.Fatalf("slice: %v", err)
		}
	}
	masked, err := a.Mask(keep)
	if err != nil {
		t.Fatalf("mask: %v", err)
	}
	checkSameOutputs(t, masked, slim, rand.New(rand.NewPCG(seed, 6)))
	checkCorrespondence(t, a, keep, m, slim)
	return len(keep)
}

// checkCorrespondence wants every plain conv of the slim model to hold exactly the filters and
// input positions Correspond names: slim weight [o, i] = original weight [Out[o], In[i]].
func checkCorrespondence(t *testing.T, a *rewrite.Analysis, keep rewrite.Keep, orig, slim *onnx.Model) {
	t.Helper()
	corr, err := a.Correspond(keep)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, n := range slim.Graph.Nodes {
		if n.OpType != "Conv" || n.Int("group", 1) != 1 {
			continue
		}
		var on *onnx.Node
		for _, o := range orig.Graph.Nodes {
			if o.Name == n.Name {
				on = o
			}
		}
		ow, sw := orig.Graph.Inits[on.Inputs[1]], slim.Graph.Inits[n.Inputs[1]]
		c := corr[n.Name]
		out, in := c.Out, c.In
		if out == nil {
			out = indices(int(ow.Dims[0]))
		}
		if in == nil {
			in = indices(int(ow.Dims[1]))
		}
		if sw.Dims[0] != int64(len(out)) || sw.Dims[1] != int64(len(in)) {
			t.Fatalf("conv %s: slim weight %v, Correspond keeps %d outputs and %d inputs", n.Name, sw.Dims, len(out), len(in))
		}
		k := int(ow.Dims[2] * ow.Dims[3])
		for o, oo := range out {
			for i, oi := range in {
				got := sw.Floats[(o*len(in)+i)*k : (o*len(in)+i+1)*k]
				want := ow.Floats[(oo*int(ow.Dims[1])+oi)*k : (oo*int(ow.Dims[1])+oi+1)*k]
				if !slices.Equal(got, want) {
					t.Fatalf("conv %s: slim filter [%d, %d] is not the original [%d, %d]", n.Name, o, i, oo, oi)
				}
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("no plain conv checked")
	}
}

func indices(n int) []int {
	v := make([]int, n)
	for i := range v {
		v[i] = i
	}
	return v
}

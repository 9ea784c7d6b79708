package latency

import (
	"time"

	"github.com/chanopt/chanopt/rewrite"
)

// Point is one measured width: the layer's kernel time in ms (its ratio to the full width's, timed
// side by side, times the full width's time; see timeParts).
type Point struct {
	Width int     `json:"width"`
	MS    float64 `json:"ms"`
}

// Kernel is one layer configuration and its measurements.
type Kernel struct {
	Op  string `json:"op"`
	In  int    `json:"in"`  // full input channels
	Out int    `json:"out"` // full output channels
	// Diagonal marks a block-diagonal conv (depthwise, or grouped with as many channels in as
	// out per group): in and out shrink together, by whole blocks.
	Diagonal bool `json:"diagonal,omitempty"`
	// FullMS is the time at full widths.
	FullMS float64 `json:"full_ms"`
	// InLadder varies the input channels with the output at full; OutLadder varies the output with
	// the input at full (for a block-diagonal conv, both together). Each includes the full width.
	InLadder  []Point `json:"in_ladder,omitempty"`
	OutLadder []Point `json:"out_ladder,omitempty"`
	Signature string  `json:"signature"`
}

// Side says how a layer's input or output channels follow group widths: kept = Full − Multiplier ×
// Σ (Channels[i] − width of Groups[i]). Channels outside any prunable group always stay.
type Side struct {
	Full       int               `json:"full"`
	Groups     []rewrite.GroupID `json:"groups,omitempty"`
	Channels   []int             `json:"channels,omitempty"`
	Multiplier int               `json:"multiplier,omitempty"`
}

// kept is the side's channel count at the given widths (groups not given keep their width).
func (s Side) kept(widths map[rewrite.GroupID]int) int {
	k := s.Full
	for i, g := range s.Groups {
		if w, ok := widths[g]; ok {
			k -= max(1, s.Multiplier) * (s.Channels[i] - w)
		}
	}
	return max(k, 1)
}

// Layer is one timed unit of the model: its nodes (the weighted one first), its kernel, and how its
// channels follow the groups.
type Layer struct {
	Nodes  []string `json:"nodes"`
	Kernel int      `json:"kernel"`
	In     Side     `json:"in"`
	Out    Side     `json:"out"`
	// Plane is the number of elements of its output per output channel (batch × spatial): the
	// elementwise work on its output grows with it (see Table.LayerShare).
	Plane int64 `json:"plane"`
}

// Table is a model's per-layer latency table in one runtime at one thread count and batch.
type Table struct {
	Key     string             `json:"key"`
	Runtime string             `json:"runtime"`
	Version string             `json:"version"`
	Threads int                `json:"threads"`
	Batch   int                `json:"batch"`
	Inputs  map[string][]int64 `json:"inputs"`
	// FullMS is the whole model's time (lower quartile) and FullSpreadMS half its interquartile range.
	FullMS       float64 `json:"full_ms"`
	FullSpreadMS float64 `json:"full_spread_ms"`
	// LayerShare is the layers' share of the model's kernel time, profiled in the whole model. The
	// rest is elementwise work (activations ONNX Runtime does not fuse, such as EfficientNet's
	// SiLU, a fifth of its time; SE gates; pooling; residual adds; layout reorders), which follows
	// the size of the layers' outputs rather than their MACs.
	LayerShare float64 `json:"layer_share"`
	// ProfileOverheadUS is what the profiler adds to each node's kernel time, taken off every time
	// profiled (profileOverhead).
	ProfileOverheadUS float64  `json:"profile_overhead_us"`
	Kernels           []Kernel `json:"kernels"`
	Layers            []Layer  `json:"layers"`
	// Slope maps the layers' summed ratio onto the whole model's: predicted ratio = 1 − Slope·(1 −
	// raw ratio), fitted on Calibration (1 when there is none).
	Slope       float64      `json:"slope"`
	Calibration *Calibration `json:"calibration,omitempty"`
	// Measurements counts the single-layer models timed; BuildSeconds is how long building took.
	Measurements int     `json:"measurements"`
	BuildSeconds float64 `json:"build_seconds"`
}

// at interpolates a ladder at width w: linearly between the nearest widths on the grid (see
// onGrid), proportionally below the smallest; off the grid, times the cost of leaving it that the
// probe of the same kind measured (its time over the grid's interpolation at its width).
func at(ladder []Point, full, w int) float64 {
	var grid, probes []Point
	for _, p := range ladder {
		if onGrid(p.Width, full) {
			grid = append(grid, p)
		} else {
			probes = append(probes, p)
		}
	}
	t := interpolate(grid, w)
	if onGrid(w, full) {
		return t
	}
	var probe *Point
	for i := range probes {
		if kind(probes[i].Width) == kind(w) || probe == nil && kind(probes[i].Width) == 1 {
			probe = &probes[i]
		}
	}
	if probe == nil {
		return t
	}
	if base := interpolate(grid, probe.Width); base > 0 {
		t *= probe.MS / base
	}
	return t
}

// interpolate is piecewise linear over sorted points, proportional below the first.
func interpolate(pts []Point, w int) float64 {
	if len(pts) == 0 {
		return 0
	}
	if w <= pts[0].Width {
		return pts[0].MS * float64(w) / float64(pts[0].Width)
	}
	for i := 1; i < len(pts); i++ {
		if w <= pts[i].Width {
			a, b := pts[i-1], pts[i]
			f := float64(w-a.Width) / float64(b.Width-a.Width)
			return a.MS + f*(b.MS-a.MS)
		}
	}
	last := pts[len(pts)-1]
	return last.MS * float64(w) / float64(last.Width)
}

// layerMS is a layer's predicted time at the given widths.
func (t *Table) layerMS(l Layer, widths map[rewrite.GroupID]int) float64 {
	k := t.Kernels[l.Kernel]
	if k.Diagonal {
		if len(k.OutLadder) == 0 {
			return k.FullMS
		}
		return at(k.OutLadder, k.Out, l.Out.kept(widths))
	}
	ms := k.FullMS
	if k.FullMS <= 0 {
		return 0
	}
	if len(k.InLadder) > 0 {
		ms *= at(k.InLadder, k.In, l.In.kept(widths)) / k.FullMS
	}
	if len(k.OutLadder) > 0 {
		ms *= at(k.OutLadder, k.Out, l.Out.kept(widths)) / k.FullMS
	}
	return ms
}

// Calibration is the uniform cut a table's slope was fitted on: its widths, the layers' summed
// ratio there, and the whole model's measured ratio (cut over original, timed alternately).
type Calibration struct {
	Widths        map[rewrite.GroupID]int `json:"widths"`
	RawRatio      float64                 `json:"raw_ratio"`
	MeasuredRatio float64                 `json:"measured_ratio"`
}

// rawRatio is the model's time at the widths over its time at full width, before calibration:
// the layers' summed time over their sum at full width, weighted by LayerShare, and the layers'
// summed output sizes over theirs at full width (what the elementwise work follows) for the rest.
// A cut that keeps the wide expansions of an inverted-residual net's blocks saves their MACs'
// share of the convs' time but little of the SiLU and gating applied to them: on efficientnet_b0,
// a search that priced only the layers chose widths predicted at 0.551 of the original's
// latency, which ran at 0.61–0.63.
func (t *Table) rawRatio(widths map[rewrite.GroupID]int) float64 {
	var full, now, outFull, outNow float64
	for _, l := range t.Layers {
		full += t.Kernels[l.Kernel].FullMS
		now += t.layerMS(l, widths)
		outFull += float64(l.Plane) * float64(l.Out.Full)
		outNow += float64(l.Plane) * float64(l.Out.kept(widths))
	}
	if full <= 0 {
		return 1
	}
	r := now / full
	if t.LayerShare > 0 && t.LayerShare < 1 && outFull > 0 {
		r = t.LayerShare*r + (1-t.LayerShare)*outNow/outFull
	}
	return r
}

// Predict is the model's latency at the given group widths (groups not given keep their full
// width): the whole model's time scaled by rawRatio, corrected by the calibration's slope.
func (t *Table) Predict(widths map[rewrite.GroupID]int) time.Duration {
	r := t.rawRatio(widths)
	if t.Slope > 0 {
		// The floor keeps a cut from predicting no time at all where the slope overshoots.
		r = max(r/4, 1-t.Slope*(1-r))
	}
	return time.Duration(t.FullMS * r * float64(time.Millisecond))
}

// LayerTimes are each layer's predicted ms at the given widths, in Layers order (for reports).
func (t *Table) LayerTimes(widths map[rewrite.GroupID]int) []float64 {
	out := make([]float64, len(t.Layers))
	for i, l := range t.Layers {
		out[i] = t.layerMS(l, widths)
	}
	return out
}

package optimizer

import (
	"math"
	"sort"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/engine"
	"github.com/chanopt/chanopt/rewrite"
)

// Sensitivity is how much the model's agreement with itself drops when one group alone is cut to
// half its width (keeping its most important channels, with BN recalibration where BN is kept).
type Sensitivity struct {
	ID   rewrite.GroupID `json:"id"`
	Drop float64         `json:"drop"` // 1 − agreement with the original (top-1, IoU or cosine: Agreement.Figure)
	KL   float64         `json:"kl"`
}

// Sensitivities measures every prunable group on the images. progress, if set, is told after each.
func Sensitivities(a *rewrite.Analysis, set *dataset.Set, batch, threads int, progress func(done, total int)) ([]Sensitivity, error) {
	p, err := engine.Compile(a.Model, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	teacher, err := RunOutputs(p, a.Model, set, batch, nil)
	p.Close()
	if err != nil {
		return nil, err
	}
	imp := L1Importance(a)
	groups := a.Prunable()
	var out []Sensitivity
	for i, g := range groups {
		w := Width(g, float64(g.Channels)/2, 1)
		if w >= g.Channels {
			continue
		}
		keep := KeepWidths(a, imp, Widths{g.ID: w})
		m, err := a.Slice(keep)
		if err != nil {
			return nil, err
		}
		if _, err := RecalibrateBN(m, set, batch, threads); err != nil {
			return nil, err
		}
		sp, err := engine.Compile(m, engine.Options{Threads: threads})
		if err != nil {
			return nil, err
		}
		student, err := runOutputs(sp, set, batch)
		sp.Close()
		if err != nil {
			return nil, err
		}
		ag, err := CompareOutputs(teacher, student, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, Sensitivity{ID: g.ID, Drop: 1 - ag.Figure(), KL: ag.KL})
		if progress != nil {
			progress(i+1, len(groups))
		}
	}
	return out, nil
}

// Spearman is the rank correlation of two samples (average ranks for ties); NaN with fewer than
// three points or a constant sample.
func Spearman(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 3 {
		return math.NaN()
	}
	rx, ry := ranks(x), ranks(y)
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	n := float64(len(rx))
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return v[idx[i]] < v[idx[j]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

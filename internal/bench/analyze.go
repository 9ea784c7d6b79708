package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
)

// benchAnalyze: the metrics of resnet50 (every layer's EVBMF on both unfoldings, the group scores)
// against one plain sweep of singular values over the same unfoldings' output sides.
func benchAnalyze(env *benchEnv) error {
	path := filepath.Join(env.zoo, "resnet50.onnx")
	m, err := onnx.Load(path)
	if err != nil {
		return fmt.Errorf("%v (run make zoo)", err)
	}
	t0 := time.Now()
	a, err := rewrite.Groups(m)
	if err != nil {
		return err
	}
	layers, err := optimizer.LayerMetricsOf(m)
	if err != nil {
		return err
	}
	optimizer.GroupScores(a, layers)
	analyze := time.Since(t0)
	t1 := time.Now()
	sweep := 0
	for _, n := range m.Graph.Nodes {
		if n.OpType != "Conv" && n.OpType != "Gemm" {
			continue
		}
		w := m.Graph.Inits[n.Input(1)]
		if w == nil || len(w.Dims) < 2 {
			continue
		}
		if _, err := optimizer.SingularValues(optimizer.Unfold(w.Floats, w.Dims, 0)); err != nil {
			return err
		}
		sweep++
	}
	sv := time.Since(t1)
	fmt.Printf("   resnet50: analyze (groups + EVBMF on %d layers, both sides) %.2f s; one singular-value sweep of the output sides %.2f s: ratio %.2fx (target: analyze under 10 s)\n",
		len(layers), analyze.Seconds(), sv.Seconds(), analyze.Seconds()/sv.Seconds())
	_ = sweep
	return nil
}

package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
	"github.com/chanopt/chanopt/rewrite"
)

// TestRandomCutsKeepTheirMACs: the runtime bench's random allocations keep MACs within the range
// asked and differ from each other.
func TestRandomCutsKeepTheirMACs(t *testing.T) {
	m, err := onnx.Load(filepath.Join(testenv.ModelsDir(t), "mobilenetv2_se.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := onnx.BatchOne(m.Graph, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := optimizer.Measure(m, shapes)
	if err != nil {
		t.Fatal(err)
	}
	const lo, hi, grid = 0.48, 0.50, 8
	a, err := rewrite.Groups(m)
	if err != nil {
		t.Fatal(err)
	}
	cuts, err := randomCuts(a, optimizer.L1Importance(a), shapes, grid, lo, hi, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cuts) != 4 {
		t.Fatalf("%d allocations, want 4", len(cuts))
	}
	seen := map[string]bool{}
	for i, c := range cuts {
		costs, err := optimizer.Measure(c, shapes)
		if err != nil {
			t.Fatal(err)
		}
		if r := float64(costs.MACs) / float64(base.MACs); r < lo || r > hi {
			t.Errorf("allocation %d keeps %.4f of the MACs: want %.2f to %.2f", i, r, lo, hi)
		}
		ca, err := rewrite.Groups(c)
		if err != nil {
			t.Fatal(err)
		}
		var widths []int
		for _, g := range ca.Groups {
			widths = append(widths, g.Channels)
		}
		seen[fmt.Sprint(widths)] = true
	}
	if len(seen) < 2 {
		t.Errorf("the random allocations are all the same")
	}
}

package optimizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// authorsCase is one matrix for testdata/evbmf_authors.py, known by its singular values.
type authorsCase struct {
	S    []float64 `json:"s"`
	Rows int       `json:"rows"`
	Cols int       `json:"cols"`
}

// authorsResult is what the authors' EVBMF computes on it (see testdata/evbmf_authors.py).
type authorsResult struct {
	OK      bool    `json:"ok"`
	K       int     `json:"k"`
	Sigma2  float64 `json:"sigma2"`
	KGlobal int     `json:"k_global"`
}

// authorsEVBMF runs testdata/evbmf_authors.py on the cases.
func authorsEVBMF(t *testing.T, cases []authorsCase) []authorsResult {
	t.Helper()
	testenv.RequirePythonModules(t, "numpy", "scipy")
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Python(), filepath.Join("testdata", "evbmf_authors.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evbmf_authors.py: %v: %s", err, stderr.Bytes())
	}
	var res []authorsResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("evbmf_authors.py: %d results for %d cases (%v)", len(res), len(cases), err)
	}
	return res
}

// modelSides are the unfoldings of every measured layer side of the models, with a label.
func modelSides(t *testing.T, paths []string) (labels []string, ys []*mat.Dense) {
	t.Helper()
	for _, p := range paths {
		m, err := onnx.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range m.Graph.Nodes {
			for _, out := range []bool{true, false} {
				u, err := LayerUnfolding(m.Graph, n, out)
				if err != nil || u == nil {
					continue
				}
				if r, _ := u.Dims(); r < 2 {
					continue
				}
				side := "in"
				if out {
					side = "out"
				}
				labels = append(labels, fmt.Sprintf("%s %s %s", filepath.Base(p), n.Name, side))
				ys = append(ys, u)
			}
		}
	}
	return labels, ys
}

// TestEVBMFWideMatchesAuthors: on wide matrices (rows ≤ cols, the orientation the authors' code
// assumes) EVBMF keeps as many components as the authors' VBMF.py does (their bounded search,
// their bounds, their default tolerance), on planted low-rank matrices and on every wide layer
// side of the bundled models. Both searches are local: where the free energy has another, lower
// minimum in the interval (its global minimum keeps another K), both stop at the same local one;
// the test logs how often that happens.
func TestEVBMFWideMatchesAuthors(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 3))
	var labels []string
	var ys []*mat.Dense
	for _, c := range []struct {
		rows, cols int
		d          []float64
		sigma      float64
	}{
		{16, 64, []float64{40, 30, 20, 12}, 1},
		{8, 200, []float64{60, 25}, 1},        // a thin output side: 8 channels, 200 weights each
		{32, 40, []float64{50, 45, 40, 9}, 1}, // nearly square; one value near the threshold
		{24, 216, nil, 0.05},                  // pure noise: nothing to keep
		{48, 48, []float64{100, 80, 60, 40}, 2},
		{10, 90, []float64{5, 4}, 0.01}, // nearly noise-free
	} {
		labels = append(labels, fmt.Sprintf("planted %d×%d rank %d", c.rows, c.cols, len(c.d)))
		ys = append(ys, lowRankPlusNoise(rng, c.rows, c.cols, c.d, c.sigma))
	}
	paths, _ := filepath.Glob(filepath.Join(testenv.ModelsDir(t), "*.onnx"))
	ml, my := modelSides(t, paths)
	labels, ys = append(labels, ml...), append(ys, my...)
	var cases []authorsCase
	var ours []EVBMFResult
	var idx []int
	for i, y := range ys {
		r, c := y.Dims()
		if r > c {
			continue
		}
		got, err := EVBMF(y)
		if err != nil {
			t.Fatalf("%s: %v", labels[i], err)
		}
		cases = append(cases, authorsCase{S: got.Singular, Rows: r, Cols: c})
		ours = append(ours, got)
		idx = append(idx, i)
	}
	local := 0
	for j, want := range authorsEVBMF(t, cases) {
		label, got := labels[idx[j]], ours[j]
		if !want.OK {
			t.Errorf("%s %d×%d: the authors' code fails on a wide matrix", label, cases[j].Rows, cases[j].Cols)
			continue
		}
		if got.Rank != want.K {
			t.Errorf("%s %d×%d: K = %d (σ² %g), the authors' code keeps %d (σ² %g)", label, cases[j].Rows, cases[j].Cols, got.Rank, got.Sigma2, want.K, want.Sigma2)
		}
		if want.KGlobal != want.K {
			local++
			t.Logf("%s %d×%d: K %d at the bounded search's minimum, %d at the global one", label, cases[j].Rows, cases[j].Cols, want.K, want.KGlobal)
		}
	}
	t.Logf("%d wide matrices; on %d the free energy's global minimum would keep another K", len(cases), local)
	if len(cases) < 50 {
		t.Errorf("only %d wide matrices were compared", len(cases))
	}
}

// TestEVBMFTallDeparture measures the deliberate departure: a tall unfolding (more rows than
// columns: the input side of a 1×1 conv that reduces channels or of a Gemm after a Flatten, the
// output side of a depthwise conv) is transposed, so EVBMF sees the same matrix either way round,
// where the authors' code would run its formulas with α = L/M > 1. It asserts that the result is
// the transpose's and that tall sides exist to measure, and logs on how many the authors' code
// would fail or keep another K.
func TestEVBMFTallDeparture(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(testenv.ModelsDir(t), "*.onnx"))
	labels, ys := modelSides(t, paths)
	var cases []authorsCase
	var ours []int
	var names []string
	for i, y := range ys {
		r, c := y.Dims()
		if r <= c {
			continue
		}
		got, err := EVBMF(y)
		if err != nil {
			t.Fatal(err)
		}
		flipped, err := EVBMF(mat.DenseCopyOf(y.T()))
		if err != nil {
			t.Fatal(err)
		}
		if got.Rank != flipped.Rank {
			t.Errorf("%s: K %d, its transpose's %d", labels[i], got.Rank, flipped.Rank)
		}
		cases = append(cases, authorsCase{S: got.Singular, Rows: r, Cols: c})
		ours = append(ours, got.Rank)
		names = append(names, fmt.Sprintf("%s %d×%d", labels[i], r, c))
	}
	if len(cases) == 0 {
		t.Fatal("no tall side found: nothing measured")
	}
	fail, differ := 0, 0
	for j, want := range authorsEVBMF(t, cases) {
		switch {
		case !want.OK:
			fail++
		case want.K != ours[j]:
			differ++
			t.Logf("%s: K %d transposed, %d as the authors' code runs it", names[j], ours[j], want.K)
		}
	}
	t.Logf("%d measured sides on %d bundled models, %d tall: untransposed, the authors' code fails on %d and keeps another K on %d",
		len(ys), len(paths), len(cases), fail, differ)
}

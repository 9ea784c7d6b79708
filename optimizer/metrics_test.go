package optimizer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

func TestUnfold(t *testing.T) {
	// w[i][j][k] = 100i + 10j + k, shape 2×3×2.
	dims := []int64{2, 3, 2}
	var w []float32
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 2; k++ {
				w = append(w, float32(100*i+10*j+k))
			}
		}
	}
	tests := []struct {
		axis int
		want *mat.Dense
	}{
		{0, mat.NewDense(2, 6, []float64{0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121})},
		{1, mat.NewDense(3, 4, []float64{0, 1, 100, 101, 10, 11, 110, 111, 20, 21, 120, 121})},
	}
	for _, tc := range tests {
		if got := Unfold(w, dims, tc.axis); !mat.Equal(got, tc.want) {
			t.Errorf("axis %d:\n%v\nwant\n%v", tc.axis, mat.Formatted(got), mat.Formatted(tc.want))
		}
	}
}

func TestSideMetrics(t *testing.T) {
	tests := []struct {
		name             string
		values           []float64
		c                int
		rank, kg, mc, qc float64
	}{
		{"nothing kept", nil, 16, 0, 0, 0, 0},
		{"three kept", []float64{4, 2, 1}, 8, 3.0 / 8, 1.75 / 8, 4, math.Atan2(3.0/8, 0.75)},
		{"one kept", []float64{2.5}, 4, 0.25, 0.25, 1, math.Pi / 2},
		{"all kept, equal", []float64{1, 1, 1, 1}, 4, 1, 1, 1, math.Pi / 2},
	}
	for _, tc := range tests {
		rank, kg, mc, qc := sideMetrics(EVBMFResult{Rank: len(tc.values), Values: tc.values}, tc.c)
		if got, want := []float64{rank, kg, mc, qc}, []float64{tc.rank, tc.kg, tc.mc, tc.qc}; !floatsClose(got, want, 1e-12) {
			t.Errorf("%s: rank, KG, MC, QC = %v, want %v", tc.name, got, want)
		}
	}
}

func floatsClose(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol*math.Max(1, math.Abs(b[i])) {
			return false
		}
	}
	return true
}

// convWeight returns a C_out × C_in × kh × kw weight whose output-side unfolding has rank r plus a
// little noise.
func convWeight(rng *rand.Rand, cout, cin, kh, kw, r int) ([]float32, []int64) {
	d := make([]float64, r)
	for k := range d {
		d[k] = float64(3+r-k) * (math.Sqrt(float64(cout)) + math.Sqrt(float64(cin*kh*kw)))
	}
	y := lowRankPlusNoise(rng, cout, cin*kh*kw, d, 0.3)
	w := make([]float32, 0, cout*cin*kh*kw)
	for _, v := range y.RawMatrix().Data {
		w = append(w, float32(v))
	}
	return w, []int64{int64(cout), int64(cin), int64(kh), int64(kw)}
}

func TestWeightMetrics(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	w3, d3 := convWeight(rng, 32, 16, 3, 3, 6)
	w1, d1 := convWeight(rng, 64, 32, 1, 1, 9)
	wdw, ddw := convWeight(rng, 24, 1, 3, 3, 2)
	wgr, dgr := convWeight(rng, 32, 8, 3, 3, 5)
	wfirst, dfirst := convWeight(rng, 16, 1, 5, 5, 3)
	wfc, _ := convWeight(rng, 10, 40, 1, 1, 4)

	tests := []struct {
		name          string
		w             []float32
		dims          []int64
		group         int
		in, out       int
		hasIn, hasOut bool
		kOut          int
		sameK         bool // both sides come from one SVD
	}{
		{"3x3 conv", w3, d3, 1, 16, 32, true, true, 6, false},
		{"1x1 conv", w1, d1, 1, 32, 64, true, true, 9, true},
		{"depthwise", wdw, ddw, 24, 24, 24, false, true, 2, false},
		{"grouped", wgr, dgr, 4, 32, 32, true, true, 5, false},
		{"one input channel", wfirst, dfirst, 1, 1, 16, false, true, 3, false},
		{"linear", wfc, []int64{10, 40}, 1, 40, 10, true, true, 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lm, err := WeightMetrics(tc.w, tc.dims, tc.group)
			if err != nil {
				t.Fatal(err)
			}
			if lm.InChannels != tc.in || lm.OutChannels != tc.out || lm.HasIn != tc.hasIn || lm.HasOut != tc.hasOut {
				t.Errorf("in %d out %d hasIn %v hasOut %v, want %d %d %v %v", lm.InChannels, lm.OutChannels, lm.HasIn, lm.HasOut, tc.in, tc.out, tc.hasIn, tc.hasOut)
			}
			if lm.KOut != tc.kOut {
				t.Errorf("K out %d, want %d", lm.KOut, tc.kOut)
			}
			if want := float64(tc.kOut) / float64(tc.dims[0]); lm.RankOut != want {
				t.Errorf("rank out %g, want %g", lm.RankOut, want)
			}
			if tc.sameK && (lm.KIn != lm.KOut || lm.MCIn != lm.MCOut) {
				t.Errorf("transposed unfoldings disagree: K %d/%d, MC %g/%g", lm.KIn, lm.KOut, lm.MCIn, lm.MCOut)
			}
			if !tc.hasIn && (lm.KIn != 0 || lm.RankIn != 0 || lm.KGIn != 0 || lm.MCIn != 0 || lm.QCIn != 0 || lm.QC != lm.QCOut) {
				t.Errorf("absent input side has metrics: %+v", lm)
			}
			if tc.hasIn && lm.QC != (lm.QCIn+lm.QCOut)/2 {
				t.Errorf("QC %g, want the mean of %g and %g", lm.QC, lm.QCIn, lm.QCOut)
			}
			// Each side must equal EVBMF run directly on its unfolding.
			direct := func(axis int) EVBMFResult {
				r, err := EVBMF(Unfold(tc.w, tc.dims, axis))
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			if r := direct(0); r.Rank != lm.KOut {
				t.Errorf("EVBMF of the output unfolding keeps %d, metrics say %d", r.Rank, lm.KOut)
			}
			if tc.hasIn {
				r := direct(1)
				rank, kg, mc, qc := sideMetrics(r, int(tc.dims[1]))
				if got, want := []float64{lm.RankIn, lm.KGIn, lm.MCIn, lm.QCIn}, []float64{rank, kg, mc, qc}; !floatsClose(got, want, 1e-8) {
					t.Errorf("input side %v, direct %v", got, want)
				}
			}
			for _, v := range []float64{lm.RankIn, lm.RankOut, lm.KGIn, lm.KGOut, lm.MCIn, lm.MCOut, lm.QCIn, lm.QCOut, lm.QC} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("bad metric value in %+v", lm)
				}
			}
		})
	}
}

func TestWeightMetricsBadInput(t *testing.T) {
	tests := []struct {
		name  string
		w     []float32
		dims  []int64
		group int
		ok    bool
	}{
		{"too few values", make([]float32, 5), []int64{2, 3}, 1, false},
		{"one dim", make([]float32, 5), []int64{5}, 1, false},
		{"group 0", make([]float32, 6), []int64{2, 3}, 0, false},
		{"negative dim", nil, []int64{-1, 3}, 1, false},
		{"NaN", []float32{1, float32(math.NaN()), 3, 4, 5, 6}, []int64{2, 3}, 1, false},
		{"empty", nil, []int64{0, 3, 3, 3}, 1, true},
		{"zeros", make([]float32, 8*4*9), []int64{8, 4, 3, 3}, 1, true},
		{"1x1", []float32{2}, []int64{1, 1, 1, 1}, 1, true},
	}
	for _, tc := range tests {
		lm, err := WeightMetrics(tc.w, tc.dims, tc.group)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
		if err == nil && (lm.KIn != 0 || lm.KOut != 0 || lm.QC != 0) {
			t.Errorf("%s: %+v, want nothing kept", tc.name, lm)
		}
	}
}

// refLayer is one layer as testdata/metrics_ref.py prints it.
type refLayer struct {
	Name        string  `json:"name"`
	Op          string  `json:"op"`
	InChannels  int     `json:"in_channels"`
	OutChannels int     `json:"out_channels"`
	HasIn       bool    `json:"has_in"`
	HasOut      bool    `json:"has_out"`
	KIn         int     `json:"k_in"`
	KOut        int     `json:"k_out"`
	RankIn      float64 `json:"rank_in"`
	RankOut     float64 `json:"rank_out"`
	KGIn        float64 `json:"kg_in"`
	KGOut       float64 `json:"kg_out"`
	MCIn        float64 `json:"mc_in"`
	MCOut       float64 `json:"mc_out"`
	QC          float64 `json:"qc"`
}

// referenceModels lists the models the numpy comparison runs on: a synthetic model with every layer
// kind, the conformance suite's conv and linear models, the bundled trained models, the foreign-style
// exports, and the zoo's
// ResNet-50 when it was built.
func referenceModels(t *testing.T) []string {
	t.Helper()
	synthetic := filepath.Join(t.TempDir(), "synthetic.onnx")
	cmd := exec.Command(testenv.Python(), filepath.Join("testdata", "metrics_model.py"), synthetic, "1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("metrics_model.py: %v\n%s", err, out)
	}
	paths := []string{synthetic}
	if _, err := os.Stat(testenv.ConformanceDir); err == nil || testenv.RequireAll() {
		conf := testenv.RequireConformance(t)
		for _, name := range []string{"test_Conv2d", "test_Conv2d_groups", "test_Conv2d_depthwise_with_multiplier",
			"test_Conv1d", "test_Conv3d", "test_ConvTranspose2d", "test_Linear"} {
			paths = append(paths, filepath.Join(conf, "pytorch-converted", name, "model.onnx"))
		}
	}
	bundled, _ := filepath.Glob(filepath.Join(testenv.ModelsDir(t), "*.onnx"))
	paths = append(paths, bundled...)
	// Exports from other tools (tf2onnx NHWC, opset 9/11 Constant weights, HardSwish SE, a
	// detection head), made by models/foreign/make_foreign.py.
	for _, f := range testenv.ForeignModels(t) {
		paths = append(paths, f.Path)
	}
	if r50 := filepath.Join(testenv.ZooDir(), "resnet50.onnx"); !testing.Short() {
		if _, err := os.Stat(r50); err == nil {
			paths = append(paths, r50)
		}
	}
	return paths
}

// The metrics equal an independent numpy/scipy implementation on every reference model: the same K on
// each side (so ranks agree exactly), KG and MC to 1e-4 relative.
func TestLayerMetricsMatchNumpy(t *testing.T) {
	testenv.RequirePythonModules(t, "numpy", "scipy", "onnx")
	for _, path := range referenceModels(t) {
		name := filepath.Base(path)
		if name == "model.onnx" {
			name = filepath.Base(filepath.Dir(path))
		}
		t.Run(strings.TrimSuffix(name, ".onnx"), func(t *testing.T) { compareWithNumpy(t, path) })
	}
}

// compareWithNumpy checks LayerMetricsOf against testdata/metrics_ref.py on one model.
func compareWithNumpy(t *testing.T, path string) {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LayerMetricsOf(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.Python(), filepath.Join("testdata", "metrics_ref.py"), path).Output()
	if err != nil {
		t.Fatalf("metrics_ref.py %s: %v", path, err)
	}
	var want []refLayer
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d layers, numpy has %d", len(got), len(want))
	}
	var sides, rankAgree int
	var maxKG, maxMC float64
	for i, g := range got {
		w := want[i]
		if g.Name != w.Name || g.Op != w.Op || g.InChannels != w.InChannels || g.OutChannels != w.OutChannels ||
			g.HasIn != w.HasIn || g.HasOut != w.HasOut {
			t.Errorf("layer %d: %s %s in %d out %d has %v/%v; numpy %s %s in %d out %d has %v/%v", i,
				g.Op, g.Name, g.InChannels, g.OutChannels, g.HasIn, g.HasOut,
				w.Op, w.Name, w.InChannels, w.OutChannels, w.HasIn, w.HasOut)
			continue
		}
		for _, s := range []struct {
			side                       string
			has                        bool
			gk, wk                     int
			gr, wr, gkg, wkg, gmc, wmc float64
		}{
			{"in", g.HasIn, g.KIn, w.KIn, g.RankIn, w.RankIn, g.KGIn, w.KGIn, g.MCIn, w.MCIn},
			{"out", g.HasOut, g.KOut, w.KOut, g.RankOut, w.RankOut, g.KGOut, w.KGOut, g.MCOut, w.MCOut},
		} {
			if !s.has {
				continue
			}
			sides++
			if s.gk == s.wk && math.Abs(s.gr-s.wr) <= 1e-6 {
				rankAgree++
			} else {
				t.Errorf("%s %s side: K %d rank %g, numpy K %d rank %g", g.Name, s.side, s.gk, s.gr, s.wk, s.wr)
				continue
			}
			kgErr, mcErr := relErr(s.gkg, s.wkg), relErr(s.gmc, s.wmc)
			maxKG, maxMC = math.Max(maxKG, kgErr), math.Max(maxMC, mcErr)
			if kgErr > 1e-4 || mcErr > 1e-4 {
				t.Errorf("%s %s side: KG %g MC %g, numpy %g %g", g.Name, s.side, s.gkg, s.gmc, s.wkg, s.wmc)
			}
		}
		if math.Abs(g.QC-w.QC) > 1e-4 {
			t.Errorf("%s: QC %g, numpy %g", g.Name, g.QC, w.QC)
		}
	}
	t.Logf("%d layers, %d sides: ranks agree on %.1f%%, max relative error KG %.2g, MC %.2g",
		len(got), sides, 100*float64(rankAgree)/float64(max(sides, 1)), maxKG, maxMC)
}

func relErr(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// Running the layers concurrently gives the same answer as one at a time, in graph order.
func TestLayerMetricsOfMatchesWeightMetrics(t *testing.T) {
	testenv.RequirePythonModules(t, "numpy", "onnx")
	path := filepath.Join(t.TempDir(), "synthetic.onnx")
	if out, err := exec.Command(testenv.Python(), filepath.Join("testdata", "metrics_model.py"), path, "2").CombinedOutput(); err != nil {
		t.Fatalf("metrics_model.py: %v\n%s", err, out)
	}
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LayerMetricsOf(m)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, lm := range got {
		names = append(names, lm.Op+" "+lm.Name)
	}
	if want := "Conv conv3x3,Conv conv1x1,Conv grouped,Conv depthwise,ConvTranspose up,Gemm fc1,MatMul fc2,Gemm fc3"; strings.Join(names, ",") != want {
		t.Errorf("layers %s, want %s", strings.Join(names, ","), want)
	}
	for _, lm := range got {
		var node *onnx.Node
		for _, n := range m.Graph.Nodes {
			if n.Label() == lm.Name {
				node = n
			}
		}
		// LayerUnfolding hands out the matrices the metrics were computed on.
		for _, side := range []struct {
			out, has bool
			k, c     int
		}{{true, lm.HasOut, lm.KOut, lm.OutChannels}, {false, lm.HasIn, lm.KIn, lm.InChannels}} {
			u, err := LayerUnfolding(m.Graph, node, side.out)
			if err != nil || u == nil {
				t.Fatalf("%s: LayerUnfolding: %v, %v", lm.Name, u, err)
			}
			res, err := EVBMF(u)
			if err != nil {
				t.Fatal(err)
			}
			if r, _ := u.Dims(); side.has && (res.Rank != side.k || (node.Int("group", 1) == 1 && r != side.c)) {
				t.Errorf("%s out=%v: unfolding has %d rows and K %d; metrics say %d channels, K %d", lm.Name, side.out, r, res.Rank, side.c, side.k)
			}
		}
		if lm.Op != "Conv" {
			continue
		}
		w := m.Graph.Inits[node.Input(1)]
		one, err := WeightMetrics(w.Floats, w.Dims, int(node.Int("group", 1)))
		if err != nil {
			t.Fatal(err)
		}
		one.Name, one.Op = lm.Name, lm.Op
		if !reflect.DeepEqual(one, lm) {
			t.Errorf("%s: LayerMetricsOf %+v\nWeightMetrics %+v", lm.Name, lm, one)
		}
	}
}

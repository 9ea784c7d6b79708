package optimizer

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chanopt/chanopt/rewrite"
)

func TestParseGuide(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Guide
		err  string
	}{
		{"", GuideRank, ""},
		{"rank", GuideRank, ""},
		{"rank-weighted", GuideRankWeighted, ""},
		{"qc", GuideQC, ""},
		{"mc", GuideMC, ""},
		{"sensitivity", GuideSensitivity, ""},
		{"reversed", GuideReversed, ""},
		{"none", GuideNone, ""},
		{"QC", "", "want one of"},
		{"random", "", "want one of"},
	} {
		got, err := ParseGuide(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseGuide(%q) = %q, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseGuide(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// TestPositionWeights: a guide's bias depends on the order of its keys only: the lowest key gives
// most (1), the highest least (0), ties share their mean position and unmeasured groups sit in
// the middle.
func TestPositionWeights(t *testing.T) {
	groups := []*rewrite.Group{{ID: 0}, {ID: 1}, {ID: 2}, {ID: 3}, {ID: 4}}
	for _, c := range []struct {
		name string
		key  []float64
		want []float64
	}{
		{"ascending", []float64{0.1, 0.2, 0.3, 0.4, 0.5}, []float64{1, 0.75, 0.5, 0.25, 0}},
		{"scale-free", []float64{-100, 1e-9, 2e-9, 7, 1e9}, []float64{1, 0.75, 0.5, 0.25, 0}},
		{"ties and unmeasured", []float64{0.1, 0.5, 0.5, 0.9, math.NaN()}, []float64{1, 0.5, 0.5, 0, 0.5}},
		{"minus infinity first", []float64{math.Inf(-1), -3, -2, -1, 0}, []float64{1, 0.75, 0.5, 0.25, 0}},
	} {
		key := map[rewrite.GroupID]float64{}
		for i, k := range c.key {
			key[rewrite.GroupID(i)] = k
		}
		got := positionWeights(groups, key)
		for i, w := range c.want {
			if math.Abs(got[rewrite.GroupID(i)]-w) > 1e-12 {
				t.Errorf("%s: group %d weight %v, want %v", c.name, i, got[rewrite.GroupID(i)], w)
			}
		}
	}
}

// TestGuidesOrderGroups: on a bundled model the rank guide and the reversed one order the groups
// oppositely, the unguided search has no bias, the sensitivity guide follows the drops it is
// given and fails without them, and every guide's search meets the budget.
func TestGuidesOrderGroups(t *testing.T) {
	_, shapes, a := bundled(t, "resnet8")
	layers, err := LayerMetricsOf(a.Model)
	if err != nil {
		t.Fatal(err)
	}
	groups := a.Prunable()
	ret := Retention(a, layers)
	red := func(g Guide, sens map[rewrite.GroupID]float64) map[rewrite.GroupID]float64 {
		t.Helper()
		r, err := guideRedundancy(g, a, groups, layers, ret, sens)
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		return r
	}
	rank, rev := red(GuideRank, nil), red(GuideReversed, nil)
	for _, g := range groups {
		if math.Abs(rank[g.ID]+rev[g.ID]-1) > 1e-12 {
			t.Errorf("group %d: rank %v and reversed %v are not opposite", g.ID, rank[g.ID], rev[g.ID])
		}
	}
	if r := red(GuideNone, nil); r != nil {
		t.Errorf("the unguided search has a bias: %v", r)
	}
	sens := map[rewrite.GroupID]float64{}
	for i, g := range groups {
		sens[g.ID] = float64(i) // the first group is the least sensitive
	}
	s := red(GuideSensitivity, sens)
	if s[groups[0].ID] != 1 || s[groups[len(groups)-1].ID] != 0 {
		t.Errorf("sensitivity guide: first group %v, last %v; want 1 and 0", s[groups[0].ID], s[groups[len(groups)-1].ID])
	}
	if _, err := guideRedundancy(GuideSensitivity, a, groups, layers, ret, nil); err == nil {
		t.Error("the sensitivity guide ran without sensitivities")
	}
	budget := Budget{Kind: MACs, Ratio: 0.5}
	for _, g := range Guides {
		opt := SearchOptions{Budget: budget, Inputs: shapes, Seed: 1, Iterations: 200, Layers: layers, Guide: g, Sensitivity: sens}
		res, err := Anneal(a, opt)
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if res.Cooled != 1 {
			t.Errorf("%s: a search stopped by its iterations cooled %v, want 1", g, res.Cooled)
		}
		if got := float64(res.Costs.MACs) / res.Base; got > 0.5 {
			t.Errorf("%s: kept %.3f of the MACs, budget 0.5", g, got)
		}
	}
}

// TestAnnealCoolsUnderTimeLimit: a search stopped by its time limit long before its proposals run
// out has still cooled to near the end of its schedule.
func TestAnnealCoolsUnderTimeLimit(t *testing.T) {
	_, shapes, a := bundled(t, "resnet8")
	slow := func(w Widths) (float64, error) {
		time.Sleep(20 * time.Millisecond)
		return -float64(len(w.key())), nil
	}
	res, err := Anneal(a, SearchOptions{Budget: Budget{Kind: MACs, Ratio: 0.5}, Inputs: shapes, Seed: 1,
		Iterations: 100000, TimeLimit: 2 * time.Second, Fitness: slow})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != "time limit" {
		t.Fatalf("stopped by %s, want the time limit", res.Stopped)
	}
	if res.Cooled < 0.9 {
		t.Errorf("cooled %.3f after %d proposals, want at least 0.9", res.Cooled, res.Iterations)
	}
}

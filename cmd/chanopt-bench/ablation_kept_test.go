package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAblationKeptResumes: a result appended by one run is found by the next with the same key,
// a line cut short by a killed run is ignored, and any change of build, model, variant, seed or
// setting is another key.
func TestAblationKeptResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ablation.jsonl")
	c := ablationConfig{iterations: 60, samples: 6000, holdBack: 0.25, epochs: 1}
	k := &ablationKept{path: path, code: "abc", done: map[string]ablationResult{}}
	key := k.key(c, "m1", "rank", 1)
	if err := k.add(key, ablationResult{Model: "resnet8", Variant: "rank", Seed: 1, Agreement: 92.6, Accuracy: 86.15, MACs: 0.498}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"key":"cut short`)
	f.Close()

	if err := k.add(k.key(c, "m1", "rank", 2), ablationResult{Model: "resnet8", Variant: "rank", Seed: 2, Agreement: 91}); err != nil {
		t.Fatal(err)
	}
	again := &ablationKept{path: path, code: "abc", done: map[string]ablationResult{}}
	if err := readKept(again); err != nil {
		t.Fatal(err)
	}
	if len(again.done) != 2 {
		t.Fatalf("read %d results, want the two whole lines around the one cut short", len(again.done))
	}
	r, ok := again.done[again.key(c, "m1", "rank", 1)]
	if !ok || r.Agreement != 92.6 || r.Accuracy != 86.15 || r.Code != "abc" || r.Date == "" {
		t.Fatalf("kept result %+v (found %v): want the one added, with its build and date", r, ok)
	}
	other := c
	other.iterations = 150
	otherBuild := &ablationKept{path: path, code: "def"}
	for what, k2 := range map[string]string{
		"other code":      otherBuild.key(c, "m1", "rank", 1),
		"another model":   again.key(c, "m2", "rank", 1),
		"another variant": again.key(c, "m1", "none", 1),
		"another seed":    again.key(c, "m1", "rank", 2),
		"another setting": again.key(other, "m1", "rank", 1),
	} {
		if k2 == key {
			t.Errorf("%s has the same key", what)
		}
	}
	if (&ablationKept{}).key(c, "m1", "rank", 1) != "" {
		t.Error("a build that keeps nothing gives a key")
	}
}

// TestSourceDigestFollowsTheCode: the digest changes with a Go source and not with a test or a
// document.
func TestSourceDigestFollowsTheCode(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n")
	write("a/a.go", "package a\n")
	digest := func() string {
		t.Helper()
		d, err := sourceDigest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest()
	write("a/a_test.go", "package a\n")
	write("README.md", "words\n")
	write("a/testdata/x.go", "package x\n")
	if d := digest(); d != first {
		t.Errorf("a test, a document and testdata changed the digest")
	}
	write("a/a.go", "package a\n\nconst x = 1\n")
	if d := digest(); d == first {
		t.Errorf("a changed source kept the digest")
	}
	if _, err := sourceDigest(filepath.Join(dir, "a")); err == nil {
		t.Errorf("a folder without go.mod gave a digest")
	}
}

// TestAblationKeptReadOnly: another build's results are printed, never added to under its name.
func TestAblationKeptReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ablation.jsonl")
	k := &ablationKept{path: path, code: "other", readOnly: true, done: map[string]ablationResult{}}
	c := ablationConfig{iterations: 150}
	if err := k.add(k.key(c, "m1", "rank", 1), ablationResult{Model: "resnet8"}); err == nil {
		t.Fatal("a read-only results file took a run")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the read-only results file was written (stat: %v)", err)
	}
}

// TestSeedCell: a cell over every seed is mean ± sd (one seed: its value); fewer seeds say how
// many; none is a dash.
func TestSeedCell(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want string
	}{
		{[]float64{94, 96, 95}, "95.00 ± 1.00"},
		{[]float64{94, 96}, "95.00 ± 1.41 (2)"},
		{[]float64{94.5}, "94.50 (1)"},
		{nil, "—"},
	} {
		if got := seedCell(tc.xs, 3); got != tc.want {
			t.Errorf("seedCell(%v, 3) = %q, want %q", tc.xs, got, tc.want)
		}
	}
	if got := seedCell([]float64{94.5}, 1); got != "94.50" {
		t.Errorf("seedCell([94.5], 1) = %q, want the value alone", got)
	}
}

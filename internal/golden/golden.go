// Package golden compares test output with golden files (by convention under the package's
// testdata/ folder) and rewrites them on request.
//
// Importing the package registers the -update flag, so in a package whose tests use it
//
//	go test ./engine -update
//
// rewrites that package's golden files from the current output instead of comparing; `make golden`
// does it for every package that keeps golden files, with the reference tools they need (a
// `go test ./... -update` would fail in the packages that do not import golden and so lack the
// flag). Without -update a
// mismatch fails the test with a short line diff (the first differing region with line numbers
// and a few lines of context, never the whole file), and a missing golden file fails the test
// saying how to create it. Packages that import golden must not define their own -update flag
// (the flag package panics on a duplicate name).
package golden

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Limits that keep a failure message readable.
const (
	contextLines = 3   // unchanged lines shown around the differing region
	maxHunkLines = 20  // removed (or added) lines shown before eliding
	maxLineBytes = 160 // a longer line is cut and marked
	hexWindow    = 16  // bytes shown either side of the first binary difference
)

// Updating reports whether the tests run with -update, for tests that write other artefacts.
func Updating() bool { return *update }

// Check compares got with the contents of the golden file at path. With -update it writes got
// to path instead, creating parent directories.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("golden: update %s: %v", path, err)
			return
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("golden: update %s: %v", path, err)
			return
		}
		t.Logf("golden: wrote %s (%d bytes)", path, len(got))
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("golden: %s does not exist; run make golden (or go test -update in this package) to create it", path)
		return
	}
	if err != nil {
		t.Fatalf("golden: read %s: %v", path, err)
		return
	}
	if bytes.Equal(want, got) {
		return
	}
	t.Errorf("golden: output differs from %s (run make golden, or go test -update in this package, to accept):\n%s", path, Diff(want, got))
}

// Diff describes how got differs from want: for text a unified-style hunk around the first
// differing region (lines prefixed "-" are in want only, "+" in got only), for binary data the
// offset of the first differing byte with hex of the bytes around it. The result is bounded in
// size whatever the inputs. Diff returns "" when the inputs are equal.
func Diff(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	if isBinary(want) || isBinary(got) {
		return binaryDiff(want, got)
	}
	return textDiff(want, got)
}

func isBinary(b []byte) bool {
	return bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b)
}

func binaryDiff(want, got []byte) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	lo := max(0, i-hexWindow)
	var b strings.Builder
	fmt.Fprintf(&b, "binary content differs at byte %d (want %d bytes, got %d bytes)\n", i, len(want), len(got))
	fmt.Fprintf(&b, "want [%d:]: % x\n", lo, want[lo:min(len(want), i+hexWindow)])
	fmt.Fprintf(&b, "got  [%d:]: % x\n", lo, got[lo:min(len(got), i+hexWindow)])
	return b.String()
}

// splitLines splits after each '\n'; a final line without '\n' is kept and marked so that a
// missing trailing newline shows up in the diff.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		if strings.HasSuffix(l, "\n") {
			lines[i] = l[:len(l)-1]
		} else {
			lines[i] = l + " ⏎ (no newline at end)"
		}
	}
	return lines
}

func textDiff(want, got []byte) string {
	w, g := splitLines(want), splitLines(got)
	// Common prefix and suffix (not overlapping) bound the differing region.
	p := 0
	for p < len(w) && p < len(g) && w[p] == g[p] {
		p++
	}
	s := 0
	for s < len(w)-p && s < len(g)-p && w[len(w)-1-s] == g[len(g)-1-s] {
		s++
	}
	wEnd, gEnd := len(w)-s, len(g)-s
	ctxStart := max(0, p-contextLines)
	wAfter := min(len(w), wEnd+contextLines)
	gAfter := gEnd + (wAfter - wEnd) // the suffix is common: same lines follow in both

	var b strings.Builder
	fmt.Fprintf(&b, "--- want (%d lines; its line numbers on ' ' and '-' lines)\n+++ got  (%d lines; its line numbers on '+' lines)\n", len(w), len(g))
	fmt.Fprintf(&b, "@@ -%s +%s @@\n", hunkRange(ctxStart, wAfter), hunkRange(ctxStart, gAfter))
	for i := ctxStart; i < p; i++ {
		writeLine(&b, ' ', i+1, w[i])
	}
	writeRun(&b, '-', p, w[p:wEnd])
	writeRun(&b, '+', p, g[p:gEnd])
	for i := wEnd; i < wAfter; i++ {
		writeLine(&b, ' ', i+1, w[i])
	}
	if wAfter < len(w) {
		fmt.Fprintf(&b, "  ... %d more identical lines\n", len(w)-wAfter)
	}
	return b.String()
}

// hunkRange formats a 1-based unified-diff range for lines [from, to).
func hunkRange(from, to int) string {
	if to-from == 0 {
		return fmt.Sprintf("%d,0", from)
	}
	return fmt.Sprintf("%d,%d", from+1, to-from)
}

func writeRun(b *strings.Builder, mark byte, first int, lines []string) {
	for i, l := range lines {
		if i == maxHunkLines {
			fmt.Fprintf(b, "%c ... %d more lines\n", mark, len(lines)-i)
			return
		}
		writeLine(b, mark, first+i+1, l)
	}
}

func writeLine(b *strings.Builder, mark byte, n int, line string) {
	if len(line) > maxLineBytes {
		cut := maxLineBytes
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = fmt.Sprintf("%s… (%d bytes)", line[:cut], len(line))
	}
	fmt.Fprintf(b, "%c%5d | %s\n", mark, n, line)
}

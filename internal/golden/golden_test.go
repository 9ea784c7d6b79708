package golden

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of stopping the test. Its Fatalf
// returns (unlike testing.T's), so Check must return by itself after every Fatalf.
type recorder struct {
	testing.TB // nil: calling a method not overridden below panics, which fails the test
	errors     []string
	fatals     []string
	logs       []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, a...))
}
func (r *recorder) Logf(format string, a ...any) { r.logs = append(r.logs, fmt.Sprintf(format, a...)) }

func (r *recorder) failures() int { return len(r.errors) + len(r.fatals) }

// setUpdate sets the -update flag for the duration of the test.
func setUpdate(t *testing.T, v bool) {
	old := *update
	*update = v
	t.Cleanup(func() { *update = old })
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func TestCheckMatchPasses(t *testing.T) {
	setUpdate(t, false)
	path := filepath.Join(t.TempDir(), "x.golden")
	writeFile(t, path, "a\nb\n")
	var r recorder
	Check(&r, path, []byte("a\nb\n"))
	if r.failures() != 0 {
		t.Fatalf("equal content reported as failure: errors %q fatals %q", r.errors, r.fatals)
	}
}

func TestCheckMismatchFails(t *testing.T) {
	setUpdate(t, false)
	for _, tc := range []struct {
		name      string
		want, got string
		contains  []string
		missing   []string
	}{
		{
			name:     "changed line",
			want:     numbered(1, 10),
			got:      strings.Replace(numbered(1, 10), "line 6\n", "line six\n", 1),
			contains: []string{"-    6 | line 6", "+    6 | line six", "     5 | line 5", "     3 | line 3", "     7 | line 7", "     9 | line 9", "@@ -3,7 +3,7 @@", "go test -update"},
			missing:  []string{"line 2\n", "line 10"},
		},
		{
			name:     "appended line",
			want:     "a\nb\n",
			got:      "a\nb\nc\n",
			contains: []string{"+    3 | c", "     2 | b", "--- want (2 lines;", "+++ got  (3 lines;"},
		},
		{
			name:     "removed line",
			want:     "a\nb\nc\n",
			got:      "a\nc\n",
			contains: []string{"-    2 | b", "     1 | a", "     3 | c"},
		},
		{
			name:     "missing trailing newline",
			want:     "a\nb\n",
			got:      "a\nb",
			contains: []string{"-    2 | b\n", "+    2 | b ⏎ (no newline at end)"},
		},
		{
			name:     "empty output",
			want:     "a\n",
			got:      "",
			contains: []string{"-    1 | a", "+++ got  (0 lines;"},
		},
		{
			name:     "binary",
			want:     "\x93NUMPY\x01\x00\x00\x01\x02",
			got:      "\x93NUMPY\x01\x00\x00\x01\x03",
			contains: []string{"binary content differs at byte 10 (want 11 bytes, got 11 bytes)", "01 02", "01 03"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.golden")
			writeFile(t, path, tc.want)
			var r recorder
			Check(&r, path, []byte(tc.got))
			if len(r.errors) != 1 || len(r.fatals) != 0 {
				t.Fatalf("want exactly one Errorf, got errors %q fatals %q", r.errors, r.fatals)
			}
			msg := r.errors[0]
			if !strings.Contains(msg, path) {
				t.Errorf("message does not name the golden file %s:\n%s", path, msg)
			}
			for _, s := range tc.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q:\n%s", s, msg)
				}
			}
			for _, s := range tc.missing {
				if strings.Contains(msg, s) {
					t.Errorf("message should not contain %q (outside the context window):\n%s", s, msg)
				}
			}
			if got, _ := os.ReadFile(path); string(got) != tc.want {
				t.Errorf("Check without -update modified the golden file")
			}
		})
	}
}

func TestCheckMismatchMessageIsBounded(t *testing.T) {
	setUpdate(t, false)
	path := filepath.Join(t.TempDir(), "big.golden")
	want := strings.SplitAfter(numbered(1, 100_000), "\n")
	got := append([]string(nil), want...)
	got[4] = strings.Repeat("x", 100_000) + "\n" // line 5: one very long line
	for i := 5; i < 100; i++ {                   // lines 6-100: a long changed run
		got[i] = strings.ToUpper(got[i])
	}
	writeFile(t, path, strings.Join(want, ""))
	var r recorder
	Check(&r, path, []byte(strings.Join(got, "")))
	if len(r.errors) != 1 {
		t.Fatalf("want one Errorf, got errors %d fatals %q", len(r.errors), r.fatals)
	}
	msg := r.errors[0]
	if n := len(msg); n > 8000 {
		t.Errorf("message is %d bytes, want a short excerpt", n)
	}
	for _, s := range []string{"-    5 | line 5", "+    5 | xxx", "(100000 bytes)", "+    6 | LINE 6", "- ... 76 more lines", "+ ... 76 more lines", "   101 | line 101", "   103 | line 103", "... 99897 more identical lines"} {
		if !strings.Contains(msg, s) {
			t.Errorf("message lacks %q:\n%s", s, msg)
		}
	}
	if strings.Contains(msg, "line 104") {
		t.Errorf("message shows more than %d lines of context:\n%s", contextLines, msg)
	}
}

func TestCheckMissingGoldenFails(t *testing.T) {
	setUpdate(t, false)
	dir := t.TempDir()
	path := filepath.Join(dir, "testdata", "none.golden")
	var r recorder
	Check(&r, path, []byte("x"))
	if len(r.fatals) != 1 || len(r.errors) != 0 {
		t.Fatalf("want exactly one Fatalf, got errors %q fatals %q", r.errors, r.fatals)
	}
	for _, s := range []string{path, "does not exist", "go test -update"} {
		if !strings.Contains(r.fatals[0], s) {
			t.Errorf("message lacks %q: %s", s, r.fatals[0])
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("Check without -update created %s", path)
	}
}

func TestCheckUpdateWrites(t *testing.T) {
	setUpdate(t, true)
	dir := t.TempDir()
	path := filepath.Join(dir, "testdata", "sub", "new.golden") // parent folders do not exist yet
	var r recorder
	Check(&r, path, []byte("first\n"))
	if r.failures() != 0 {
		t.Fatalf("update failed: errors %q fatals %q", r.errors, r.fatals)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "first\n" {
		t.Fatalf("after update: %q, %v; want %q", got, err, "first\n")
	}
	Check(&r, path, []byte("second\n")) // overwrite, no comparison
	if r.failures() != 0 {
		t.Fatalf("second update failed: errors %q fatals %q", r.errors, r.fatals)
	}
	if got, _ := os.ReadFile(path); string(got) != "second\n" {
		t.Fatalf("after second update: %q, want %q", got, "second\n")
	}
	if !Updating() {
		t.Errorf("Updating() = false with -update set")
	}

	*update = false // the rewritten file is now the reference
	Check(&r, path, []byte("second\n"))
	Check(&r, path, []byte("third\n"))
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "+    1 | third") {
		t.Errorf("after update, want one mismatch against the new content, got %q", r.errors)
	}
}

func TestDiffEqualIsEmpty(t *testing.T) {
	for _, s := range []string{"", "a\n", "\x00\x01"} {
		if d := Diff([]byte(s), []byte(s)); d != "" {
			t.Errorf("Diff(%q, same) = %q, want empty", s, d)
		}
	}
}

func TestUpdateFlagRegistered(t *testing.T) {
	f := flag.Lookup("update")
	if f == nil {
		t.Fatal("-update flag not registered")
	}
	if f.DefValue != "false" {
		t.Errorf("-update default %q, want false", f.DefValue)
	}
}

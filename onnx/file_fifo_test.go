//go:build unix

package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestLoadFromPipe: a model that is not a regular file (a named pipe, /dev/stdin) is read from the
// one open of it (a second open would wait for a second writer) and loads as the file would.
func TestLoadFromPipe(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m.onnx")
	if err := WriteFile(src, wireAliasProto(), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	data := fileMustRead(t, src)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go fileFeed(fifo, data, false)
	m, err := Load(fifo)
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Graph.Inits["w1"].Floats; len(w) != 5000 || w[7] != 7*0.5+1 {
		t.Errorf("w1 from a pipe: %d values, w1[7] = %v", len(w), w[7])
	}
	if _, got := wireSaveLoad(t, m); !bytes.Equal(got, data) {
		t.Error("the model read from a pipe did not save as it was")
	}
}

// fileFeed writes data to the named pipe path, forever if repeat, until the reader closes it.
func fileFeed(path string, data []byte, repeat bool) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	for {
		if _, err := f.Write(data); err != nil || !repeat {
			return
		}
	}
}

// TestStreamLimits: a stream is read at most up to the limit and refused past it, one that cannot
// be protobuf is refused at once, and neither leaves the reader waiting.
func TestStreamLimits(t *testing.T) {
	// Well-formed fields (unknown field 15, 1000 bytes each), forever: only the limit stops it.
	var endless []byte
	for range 64 {
		endless = protowire.AppendBytes(protowire.AppendTag(endless, 15, protowire.BytesType), make([]byte, 1000))
	}
	model, err := Encode(fileSmallModel())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		data   []byte
		repeat bool
		limit  int64
		want   string // "" for success
	}{
		{"model under the limit", model, false, int64(len(model)), ""},
		{"model over the limit", model, false, int64(len(model)) - 1, "more than the " + byteSize(int64(len(model))-1)},
		{"endless fields", endless, true, 1 << 20, "more than the 1048576 bytes"},
		{"endless zeros", make([]byte, 1<<16), true, 1 << 30, "not an ONNX model"},
		{"endless text", []byte("this is not a model\n"), true, 1 << 30, "not an ONNX model"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fifo := filepath.Join(dir, "fifo"+string(rune('a'+i)))
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			go fileFeed(fifo, c.data, c.repeat)
			done := make(chan error, 1)
			go func() {
				m, err := readModel(fifo, c.limit)
				if err == nil && m.GetGraph() == nil {
					err = os.ErrInvalid
				}
				done <- err
			}()
			select {
			case err := <-done:
				if c.want == "" && err != nil {
					t.Errorf("err = %v, want success", err)
				}
				if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
					t.Errorf("err = %v, want it to say %q", err, c.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("still reading after 20 s")
			}
		})
	}
}

// TestDevZero: /dev/zero as a model (issue 16, case 7) is refused at once with one line naming it.
func TestDevZero(t *testing.T) {
	start := time.Now()
	_, err := ReadFile("/dev/zero")
	if err == nil || !strings.HasPrefix(err.Error(), "/dev/zero: ") || !strings.Contains(err.Error(), "not an ONNX model") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line naming /dev/zero and saying it is not an ONNX model", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: /dev/zero was read far beyond its first bytes", d)
	}
}

package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// mappedBytes reports whether b lies in a mapping of a model file that still holds its lease.
func mappedBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	return mapOf(unsafe.Pointer(unsafe.SliceData(b))) != nil
}

// mapOf returns the leased mapping that holds p, if any.
func mapOf(p unsafe.Pointer) *fileMap {
	leases.Lock()
	defer leases.Unlock()
	for m := range leases.maps {
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(m.data)))
		if a := uintptr(p); a >= lo && a < lo+uintptr(len(m.data)) {
			return m
		}
	}
	return nil
}

// mappedAliasModel is wireAliasModel with w1 and w2 in a mapping of the file.
func mappedAliasModel(t *testing.T) (path string, data []byte, m *Model) {
	t.Helper()
	leases.Lock()
	old := mapCap
	mapCap.bytes, mapCap.maps = max(old.bytes, leases.mapped+1<<20), max(old.maps, leases.count+1) // whatever other tests mapped
	leases.Unlock()
	defer func() { leases.Lock(); mapCap = old; leases.Unlock() }()
	withMapMin(1, func() { path, data, m = wireAliasModel(t) })
	for _, name := range []string{"w1", "w2"} {
		if !mappedBytes(floatBytes(m.Graph.Inits[name].Floats)) {
			t.Fatalf("%s is not viewed in a mapping of the file: the test would not test it", name)
		}
	}
	return path, data, m
}

// TestMappedWritesStayPrivate: a mapped tensor changed in place changes the model, not the file.
func TestMappedWritesStayPrivate(t *testing.T) {
	path, data, m := mappedAliasModel(t)
	w1 := m.Graph.Inits["w1"]
	w1.Floats[0], w1.Floats[4999] = 42, -42
	if !bytes.Equal(fileMustRead(t, path), data) {
		t.Fatal("an in-place change of a mapped tensor reached the model file")
	}
	back, _ := wireSaveLoad(t, m)
	if b := back.Graph.Inits["w1"].Floats; b[0] != 42 || b[4999] != -42 || b[1] != 0.5+1 {
		t.Errorf("saved w1[0], w1[1], w1[4999] = %v, %v, %v; want 42, 1.5, -42", b[0], b[1], b[4999])
	}
}

// TestMappedSaveOverSource: saving a mapped model over its own file (the CLI never does, the library
// may) writes the right bytes; the mapping keeps the old file, so the tensors stay as they were.
func TestMappedSaveOverSource(t *testing.T) {
	path, data, m := mappedAliasModel(t)
	if err := Save(path, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileMustRead(t, path), data) {
		t.Fatal("saving an unchanged mapped model over its file changed the bytes")
	}
	m.Graph.Inits["w2"].Floats[3] = 9
	other := filepath.Join(t.TempDir(), "other.onnx")
	if err := Save(other, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := fileMustRead(t, path); !bytes.Equal(got, fileMustRead(t, other)) || bytes.Equal(got, data) {
		t.Error("saving a changed mapped model over its file did not write the changed model")
	}
	if w := m.Graph.Inits["w1"].Floats; w[10] != 10*0.5+1 {
		t.Errorf("after two saves over the file, w1[10] = %v, want %v", w[10], 10*0.5+1)
	}
	fileNoTempFiles(t, filepath.Dir(path))
}

// TestMappedOutlivesItsModel: a float slice kept after its model and tensors were collected still
// holds the data (the mapping is kept; see mmap_linux.go).
func TestMappedOutlivesItsModel(t *testing.T) {
	_, _, m := mappedAliasModel(t)
	w := m.Graph.Inits["w1"].Floats
	m = nil
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if w[0] != 1 || w[4999] != 4999*0.5+1 || !mappedBytes(floatBytes(w)) {
		t.Errorf("after the model was collected w1[0], w1[4999] = %v, %v, mapped %v", w[0], w[4999], mappedBytes(floatBytes(w)))
	}
}

// TestMapCap: past mapCap, models are read into memory.
func TestMapCap(t *testing.T) {
	mappedAliasModel(t)
	leases.Lock()
	old := mapCap
	mapCap.maps = leases.count
	leases.Unlock()
	defer func() { leases.Lock(); mapCap = old; leases.Unlock() }()
	var m *Model
	withMapMin(1, func() { _, _, m = wireAliasModel(t) })
	if mappedBytes(floatBytes(m.Graph.Inits["w1"].Floats)) {
		t.Error("a model was mapped past mapCap")
	}
}

// TestMappedFileRewritten: another program rewriting the model file in place (open with O_TRUNC)
// while it is mapped waits for the lease, which is released only after the data was copied out of
// the mapping: the model keeps its data and no SIGBUS kills the process.
func TestMappedFileRewritten(t *testing.T) {
	path, data, m := mappedAliasModel(t)
	m.Graph.Inits["w2"].Floats[1] = 5 // a page written in place before the detach keeps its value
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(path, []byte("rewritten"), 0o644) }() // blocks on the lease
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the writer still waits for the lease after 20 s: the break was not handled")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the writer waited %v for the lease", d)
	}
	if string(fileMustRead(t, path)) != "rewritten" {
		t.Fatal("the file was not rewritten")
	}
	if mappedBytes(floatBytes(m.Graph.Inits["w1"].Floats)) {
		t.Error("the mapping still holds its lease after the file was opened for writing")
	}
	w1, w2 := m.Graph.Inits["w1"].Floats, m.Graph.Inits["w2"].Floats
	if w1[4999] != 4999*0.5+1 || w2[0] != -7 || w2[1] != 5 {
		t.Errorf("after the rewrite w1[4999], w2[0], w2[1] = %v, %v, %v; want %v, -7, 5", w1[4999], w2[0], w2[1], 4999*0.5+1)
	}
	m.Graph.Inits["w2"].Floats[1] = 1*0.5 - 7
	if _, got := wireSaveLoad(t, m); !bytes.Equal(got, data) {
		t.Error("the model saved after its file was rewritten is not the original")
	}
}

// TestLoadFromPipe: a model that is not a regular file (a pipe, /dev/stdin) is read, not mapped.
func TestLoadFromPipe(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "m.onnx")
	withMapMin(1, func() {
		if err := WriteFile(src, wireAliasProto(), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	data := fileMustRead(t, src)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Write(data)
			f.Close()
		}
	}()
	var m *Model
	var err error
	withMapMin(1, func() { m, err = Load(fifo) })
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Graph.Inits["w1"].Floats; len(w) != 5000 || w[7] != 7*0.5+1 || mappedBytes(floatBytes(w)) {
		t.Errorf("w1 from a pipe: %d values, w1[7] = %v, mapped %v", len(w), w[7], mappedBytes(floatBytes(w)))
	}
	if _, got := wireSaveLoad(t, m); !bytes.Equal(got, data) {
		t.Error("the model read from a pipe did not save as it was")
	}
}

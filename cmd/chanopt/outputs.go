package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// outputPlan holds every file one command reads and every file it will write. Outputs are
// checked when they are added, before any work: none may be a file the command reads (the model,
// its external data, --data, --labels, --input) or another output of the same run, and each
// must go into an existing, writable directory and not be a directory. Commit writes every
// output to a temporary file beside its destination, and only when all are complete renames
// them into place, so a failure leaves no output and no temporary file. The plan's temporary
// files are also removed when the process is interrupted (see signals.go).
type outputPlan struct {
	inputs  []fileRef
	outputs []*plannedOutput

	mu    sync.Mutex // guards temps against the signal handler
	temps []string
}

// fileRef is a file the command reads or writes: the flag that named it and its identity.
type fileRef struct {
	what, path string
	key        string      // cleaned absolute path with the directory's links resolved
	info       os.FileInfo // nil when the file does not exist
}

type plannedOutput struct {
	fileRef
	data []byte
}

func newFileRef(what, path string) (fileRef, error) {
	r := fileRef{what: what, path: path}
	abs, err := filepath.Abs(path)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", what, path, err)
	}
	dir, base := filepath.Split(abs)
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	r.key = filepath.Join(dir, base)
	if fi, err := os.Stat(path); err == nil {
		r.info = fi
	}
	return r, nil
}

// same reports whether two references name one file: by device and inode when both exist, by
// resolved path otherwise (also catches a link to a file not created yet).
func (r fileRef) same(o fileRef) bool {
	if r.info != nil && o.info != nil {
		return os.SameFile(r.info, o.info)
	}
	return r.key == o.key
}

// input records a file the command reads (a missing file is recorded by path).
func (p *outputPlan) input(what, path string) {
	if path == "" {
		return
	}
	if r, err := newFileRef(what, path); err == nil {
		p.inputs = append(p.inputs, r)
	}
}

// inputModel records a model file and every external data file it references.
func (p *outputPlan) inputModel(path string, m *onnx.Model) {
	p.input("the model", path)
	if m == nil || m.Source == nil {
		return
	}
	dir := filepath.Dir(path)
	for _, loc := range externalLocations(m.Source) {
		p.input(fmt.Sprintf("the model's external data (%s)", loc), filepath.Join(dir, filepath.FromSlash(loc)))
	}
}

// output adds a destination and checks it against everything recorded so far. flag names the
// option that gave it, for the error.
func (p *outputPlan) output(flag, path string) error {
	if path == "" {
		return usagef("%s: empty file name", flag)
	}
	r, err := newFileRef(flag, path)
	if err != nil {
		return err
	}
	for _, in := range p.inputs {
		if r.same(in) {
			return fmt.Errorf("%s %s: would overwrite %s (%s); chanopt never overwrites its inputs", flag, path, in.what, in.path)
		}
	}
	for _, o := range p.outputs {
		if r.same(o.fileRef) {
			return fmt.Errorf("%s %s: would overwrite %s %s of the same run", flag, path, o.what, o.path)
		}
	}
	if r.info != nil && r.info.IsDir() {
		return fmt.Errorf("%s %s: is a directory", flag, path)
	}
	if r.info != nil && !r.info.Mode().IsRegular() {
		return fmt.Errorf("%s %s: not a regular file", flag, path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s %s: directory %s does not exist", flag, path, dir)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s %s: %s is not a directory", flag, path, dir)
	}
	// A probe beside the destination: the only reliable test that the directory takes new files
	// (permissions, a read-only file system, ACLs).
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("%s %s: cannot write in %s: %v", flag, path, dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	p.outputs = append(p.outputs, &plannedOutput{fileRef: r})
	return nil
}

// tempPattern names temporary files: short, so that a destination whose name is as long as the
// file system allows still gets one, and hidden.
const tempPattern = ".chanopt-*.tmp"

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// set gives the bytes of a planned output.
func (p *outputPlan) set(path string, data []byte) {
	for _, o := range p.outputs {
		if o.path == path {
			o.data = data
			return
		}
	}
	panic("outputPlan.set: " + path + " was not planned")
}

// setModel encodes m for path. Tensors the model keeps in external files are written inline, so
// the output never refers to a file of the input (or to one it would have to write beside it).
func (p *outputPlan) setModel(path string, m *onnx.Model) error {
	b, err := encodeSelfContained(m)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	p.set(path, b)
	return nil
}

// commit writes every output's temporary file, then renames them all; on any error nothing is
// renamed and every temporary file is removed. With sync the files are fsynced before the
// renames and the directories after.
func (p *outputPlan) commit(sync bool) (err error) {
	defer p.cleanup()
	tmps := make([]string, len(p.outputs))
	for i, o := range p.outputs {
		if o.data == nil {
			return fmt.Errorf("%s: nothing to write (internal error)", o.path)
		}
		if tmps[i], err = p.writeTemp(o, sync); err != nil {
			return err
		}
	}
	// Renames under the temps lock (the signal handler waits for them) and under a lock on each
	// directory, so that two chanopt runs writing the same outputs do not interleave theirs.
	p.mu.Lock()
	defer p.mu.Unlock()
	unlock := lockDirs(p.dirs())
	defer unlock()
	for i, o := range p.outputs {
		if err := os.Rename(tmps[i], o.path); err != nil {
			return fmt.Errorf("%s %s: %v", o.what, o.path, unwrapPath(err))
		}
		p.temps = removeString(p.temps, tmps[i])
	}
	if sync {
		for _, d := range p.dirs() {
			if f, err := os.Open(d); err == nil {
				f.Sync() // best effort: not every file system syncs directories
				f.Close()
			}
		}
	}
	return nil
}

func (p *outputPlan) writeTemp(o *plannedOutput, sync bool) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(o.path), tempPattern)
	if err != nil {
		return "", fmt.Errorf("%s %s: %v", o.what, o.path, unwrapPath(err))
	}
	p.mu.Lock()
	p.temps = append(p.temps, f.Name())
	p.mu.Unlock()
	_, err = f.Write(o.data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %v", o.what, o.path, unwrapPath(err))
	}
	return f.Name(), nil
}

// dirs are the outputs' directories, sorted (the order locks are taken in).
func (p *outputPlan) dirs() []string {
	seen := map[string]bool{}
	var ds []string
	for _, o := range p.outputs {
		d := filepath.Dir(o.key)
		if !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	sort.Strings(ds)
	return ds
}

// cleanup removes the temporary files not renamed yet. Safe to call from the signal handler.
func (p *outputPlan) cleanup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.temps {
		os.Remove(t)
	}
	p.temps = nil
}

func removeString(s []string, v string) []string {
	for i, x := range s {
		if x == v {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// encodeSelfContained exports m with every external initializer inline (copies: m's own protos
// are not changed).
func encodeSelfContained(m *onnx.Model) ([]byte, error) {
	mp, err := m.Export()
	if err != nil {
		return nil, err
	}
	inline := func(t *pb.TensorProto) *pb.TensorProto {
		if t == nil || t.GetDataLocation() != pb.TensorProto_EXTERNAL || t.RawData == nil {
			return t
		}
		c := proto.Clone(t).(*pb.TensorProto)
		c.ExternalData, c.DataLocation = nil, nil
		return c
	}
	// The initializer slice is Export's own; its tensors may be the source model's protos, so
	// they are replaced, never edited. (Constant nodes were normalised into initializers.)
	for i, t := range mp.Graph.GetInitializer() {
		mp.Graph.Initializer[i] = inline(t)
	}
	if locs := externalLocations(mp); len(locs) > 0 {
		return nil, fmt.Errorf("the slim model still refers to external data (%s), which chanopt does not write", locs[0])
	}
	return onnx.Encode(mp)
}

// externalLocations lists the external data files a model's graph (and subgraphs) refer to.
func externalLocations(mp *pb.ModelProto) []string {
	seen := map[string]bool{}
	var locs []string
	note := func(t *pb.TensorProto) {
		if t == nil || t.GetDataLocation() != pb.TensorProto_EXTERNAL {
			return
		}
		for _, e := range t.ExternalData {
			if e.GetKey() == "location" && !seen[e.GetValue()] {
				seen[e.GetValue()] = true
				locs = append(locs, e.GetValue())
			}
		}
	}
	var walk func(g *pb.GraphProto)
	walk = func(g *pb.GraphProto) {
		if g == nil {
			return
		}
		for _, t := range g.Initializer {
			note(t)
		}
		for _, s := range g.SparseInitializer {
			note(s.GetValues())
			note(s.GetIndices())
		}
		for _, n := range g.Node {
			for _, a := range n.Attribute {
				note(a.T)
				for _, t := range a.Tensors {
					note(t)
				}
				walk(a.G)
				for _, sg := range a.Graphs {
					walk(sg)
				}
			}
		}
	}
	walk(mp.GetGraph())
	return locs
}

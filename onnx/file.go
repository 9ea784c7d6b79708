package onnx

// file.go: the wire-format layer. Bytes <-> *pb.ModelProto, and files <-> *pb.ModelProto with
// ONNX external data resolved on read and written back on write.
//
// External data bookkeeping lives in the proto itself. ReadFile leaves every external tensor
// as it was on disk (data_location EXTERNAL, external_data entries location/offset/length/...)
// and fills raw_data with the bytes it read. Such a tensor is "loaded external". Encode and
// WriteFile write it without its raw_data, so ReadFile followed by WriteFile reproduces the
// model file byte for byte, and each external file is rewritten with every tensor at its
// recorded offset. If a loaded external tensor's raw_data no longer fits its recorded length
// (the tensor was changed), that external file is laid out afresh.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/chanopt/chanopt/onnx/pb"
)

// maxProtoSize is the largest message protobuf implementations accept (2 GiB - 1).
const maxProtoSize = math.MaxInt32

// externalAlign is the alignment of tensor offsets in external data files we lay out: a page, as
// other writers use, so that readers that map the file can view every tensor in place.
const externalAlign = 4096

// spillThreshold is the smallest initializer WriteFile moves out on its own when a model
// would otherwise exceed maxProtoSize.
const spillThreshold = 1024

// WriteOptions controls how WriteFile stores tensor data.
type WriteOptions struct {
	// ExternalDataThreshold, when > 0, moves every initializer whose raw_data has at least
	// this many bytes to ExternalDataFile. Initializers are moved anyway (threshold 1 KiB)
	// when the model would otherwise exceed protobuf's 2 GB limit.
	ExternalDataThreshold int64
	// ExternalDataFile is the file, relative to the model's directory, that receives moved
	// initializers. Default: the model's base name + ".data".
	ExternalDataFile string
	// Sync makes the write durable: the files are fsynced before their rename, and the directory
	// after. Without it the write is atomic for other processes (a temporary file renamed into
	// place: a reader sees the old model or the new one, never a mix), but after a crash or power
	// loss the file may be old, empty or missing, as with cp, onnx.save or torch.save. That is the
	// default because a pipeline step that crashed is rerun anyway, and on these disks the fsync
	// of a 100 MB model costs more than loading and writing it (see make bench ONLY=format).
	Sync bool
}

// Decode parses an ONNX model from its protobuf bytes. It rejects empty input, bytes that are
// not protobuf and protobuf that does not look like a model. External data is not loaded;
// use ReadFile for that.
func Decode(data []byte) (*pb.ModelProto, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		if looksLikeText(data) {
			return nil, errors.New("not an ONNX model: looks like a text file")
		}
		return nil, fmt.Errorf("not an ONNX model (truncated or corrupt protobuf): %w", err)
	}
	if err := checkDecoded(m, len(data)); err != nil {
		if looksLikeText(data) {
			return nil, fmt.Errorf("%w (looks like a text file)", err)
		}
		return nil, err
	}
	return m, nil
}

// checkDecoded rejects a parsed message that cannot be an ONNX model: one with neither graph
// nor ir_version, an absurd ir_version, or mostly unknown fields.
func checkDecoded(m *pb.ModelProto, size int) error {
	if m.Graph == nil && m.IrVersion == nil {
		return errors.New("not an ONNX model: no graph")
	}
	if v := m.GetIrVersion(); m.IrVersion != nil && (v < 1 || v > 1000) {
		return fmt.Errorf("not an ONNX model: implausible ir_version %d", v)
	}
	unknown := len(m.ProtoReflect().GetUnknown())
	if unknown > size/2 {
		return fmt.Errorf("not an ONNX model: %d of %d bytes are unknown fields", unknown, size)
	}
	if m.Graph == nil && unknown > 0 {
		// Other ONNX messages (a TensorProto .pb, say) can parse as a graph-less ModelProto,
		// but only with fields ModelProto does not have.
		return errors.New("not an ONNX model: no graph")
	}
	return nil
}

// looksLikeText reports whether the start of data is printable UTF-8 text.
func looksLikeText(data []byte) bool {
	head := data[:min(len(data), 512)]
	for len(head) > 0 {
		r, n := utf8.DecodeRune(head)
		if r == utf8.RuneError && n <= 1 {
			// A rune cut off by the 512-byte window is fine; anything else is binary.
			return len(head) < utf8.UTFMax && !utf8.FullRune(head)
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
		head = head[n:]
	}
	return true
}

// Encode serialises m with protobuf's default field order. Loaded external tensors are written
// without their raw_data, as references to their external file, exactly as ReadFile found
// them; Encode does not write external files (WriteFile does). m is not changed, but it is
// briefly modified while encoding, so it must not be read concurrently.
func Encode(m *pb.ModelProto) ([]byte, error) {
	if m == nil {
		return nil, errors.New("encode: nil model")
	}
	var sw tensorSwaps
	if err := forEachTensor(m, func(t *pb.TensorProto, _ bool) error {
		if isExternalTensor(t) && t.RawData != nil {
			sw.set(t, t.ExternalData, nil)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	defer sw.restore()
	return encodeModel(m)
}

func encodeModel(m *pb.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if len(b) > maxProtoSize {
		return nil, fmt.Errorf("encode: model is %d bytes, over protobuf's 2 GB limit (WriteFile moves large initializers to external data)", len(b))
	}
	return b, nil
}

// ReadFile reads and decodes the model at path and loads its external data: every tensor with
// data_location EXTERNAL, wherever it is (initializers, sparse initializers, Constant and other
// tensor attributes, subgraphs, training info, functions), gets raw_data filled from its
// location (relative to the model's directory; absolute paths and paths leaving the directory
// are rejected), offset and length (absent: to the end of the file). The external_data entries
// and data_location stay as they were, so WriteFile can write the tensor back the same way.
//
// Each file is read into memory once (see readModel and loadExternalData): the large raw_data of a
// file are views of one buffer, which stays allocated while any of them is referenced. A model
// file over protobuf's 2 GiB limit is refused before it is read, and a stream (a pipe, a device)
// is read at most up to that limit. Errors name path.
func ReadFile(path string) (*pb.ModelProto, error) {
	m, err := readModel(path, maxProtoSize)
	if err != nil {
		return nil, fileError(path, err)
	}
	if err := loadExternalData(filepath.Dir(path), m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// fileError names path once, with the OS reason ("no such file or directory").
func fileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// extRef is a parsed external_data reference.
type extRef struct {
	location  string // as written in the model (slash-separated)
	offset    int64
	length    int64 // -1: to the end of the file
	hasOffset bool
}

// parseExtRef reads the location, offset and length entries of an external tensor.
func parseExtRef(t *pb.TensorProto) (extRef, error) {
	ref := extRef{length: -1}
	for _, e := range t.ExternalData {
		switch e.GetKey() {
		case "location":
			ref.location = e.GetValue()
		case "offset", "length":
			v, err := strconv.ParseInt(e.GetValue(), 10, 64)
			if err != nil || v < 0 {
				return ref, fmt.Errorf("tensor %q: bad external data %s %q", t.GetName(), e.GetKey(), e.GetValue())
			}
			if e.GetKey() == "offset" {
				ref.offset, ref.hasOffset = v, true
			} else {
				ref.length = v
			}
		}
	}
	if err := checkExtLocation(ref.location); err != nil {
		return ref, fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	return ref, nil
}

// checkExtLocation accepts only a relative path that stays inside the model's directory.
func checkExtLocation(loc string) error {
	switch {
	case loc == "":
		return errors.New("external data has no location")
	case strings.HasPrefix(loc, "/") || filepath.IsAbs(loc):
		return fmt.Errorf("external data location %q is absolute; it must be relative to the model's directory", loc)
	case strings.ContainsRune(loc, 0) || !filepath.IsLocal(filepath.FromSlash(loc)):
		return fmt.Errorf("external data location %q escapes the model's directory", loc)
	}
	return nil
}

func isExternalTensor(t *pb.TensorProto) bool {
	return t.GetDataLocation() == pb.TensorProto_EXTERNAL
}

// extRead is one external tensor to load.
type extRead struct {
	t   *pb.TensorProto
	ref extRef
	n   int64 // bytes to read (ref.length resolved)
}

// loadExternalData fills raw_data of every external tensor of m from files under dir. Files are
// opened through an os.Root, so symlinks cannot lead outside dir either. Each file is read once,
// into one buffer from the first tensor's data to the last one's end, and each tensor's raw_data
// is a view of its bytes there, except float32 data that does not start at a multiple of 4, and
// tensors whose bytes overlap another's, which get their own copies (so that changing one in place
// cannot change another).
func loadExternalData(dir string, m *pb.ModelProto) error {
	var order []string // file locations as first met, cleaned
	byFile := map[string][]*extRead{}
	err := forEachTensor(m, func(t *pb.TensorProto, _ bool) error {
		if !isExternalTensor(t) {
			return nil
		}
		if t.RawData != nil {
			return fmt.Errorf("tensor %q: data_location is EXTERNAL but raw_data is set too", t.GetName())
		}
		ref, err := parseExtRef(t)
		if err != nil {
			return err
		}
		key := filepath.Clean(filepath.FromSlash(ref.location))
		if byFile[key] == nil {
			order = append(order, key)
		}
		byFile[key] = append(byFile[key], &extRead{t: t, ref: ref})
		return nil
	})
	if err != nil || len(order) == 0 {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("tensor %q: external data: %w", byFile[order[0]][0].t.GetName(), err)
	}
	defer root.Close()
	for _, key := range order {
		if err := loadExternalFile(root, byFile[key]); err != nil {
			return err
		}
	}
	return nil
}

// loadExternalFile reads the tensors of one external data file (see loadExternalData).
func loadExternalFile(root *os.Root, reads []*extRead) error {
	first := reads[0]
	f, err := root.Open(filepath.FromSlash(first.ref.location))
	if err != nil {
		return fmt.Errorf("tensor %q: external data: %w", first.t.GetName(), err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tensor %q: external data: %w", first.t.GetName(), err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("tensor %q: external data %s is not a regular file", first.t.GetName(), first.ref.location)
	}
	size := st.Size()
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, r := range reads {
		name, loc := r.t.GetName(), r.ref.location
		if r.ref.offset > size {
			return fmt.Errorf("tensor %q: external data offset %d is past the end of %s (%d bytes)", name, r.ref.offset, loc, size)
		}
		r.n = r.ref.length
		if r.n < 0 {
			r.n = size - r.ref.offset
		}
		if r.n > size-r.ref.offset {
			return fmt.Errorf("tensor %q: external data [%d, %d) is past the end of %s (%d bytes)", name, r.ref.offset, r.ref.offset+r.n, loc, size)
		}
		lo, hi = min(lo, r.ref.offset), max(hi, r.ref.offset+r.n)
	}
	lo &^= 7 // the buffer starts 8-byte aligned, so data at a file offset that is a multiple of 4 is aligned too
	if err := checkMemory(hi-lo, "external data "+first.ref.location); err != nil {
		return fmt.Errorf("tensor %q: %w", first.t.GetName(), err)
	}
	buf := alignedBytes(int(hi - lo))
	if _, err := f.ReadAt(buf, lo); err != nil {
		return fmt.Errorf("tensor %q: reading external data %s: %w", first.t.GetName(), first.ref.location, err)
	}
	sorted := slices.Clone(reads)
	slices.SortStableFunc(sorted, func(a, b *extRead) int { return cmp.Compare(a.ref.offset, b.ref.offset) })
	end := int64(-1) // of the data given out so far
	for _, r := range sorted {
		at := r.ref.offset - lo
		raw := buf[at : at+r.n : at+r.n]
		if r.ref.offset < end || (DataType(r.t.GetDataType()) == Float && r.ref.offset%4 != 0) {
			own := alignedBytes(int(r.n))
			copy(own, raw)
			raw = own[:r.n:r.n]
		}
		end = max(end, r.ref.offset+r.n)
		r.t.RawData = raw
	}
	return nil
}

// WriteFile encodes m and writes it to path atomically (temporary file in the same directory,
// fsync, rename), external data files first.
//
// Loaded external tensors (see ReadFile) go back to their own location, relative to path's
// directory, at their recorded offsets; a file whose recorded layout no longer fits its
// tensors' data is laid out afresh with 4096-byte aligned offsets. With
// opt.ExternalDataThreshold > 0, initializers of at least that many bytes of raw_data are
// moved to opt.ExternalDataFile at aligned offsets; so are all initializers of 1 KiB or more
// when the model would otherwise exceed 2 GB. m itself is not changed (it is briefly modified
// while encoding, so it must not be read concurrently).
func WriteFile(path string, m *pb.ModelProto, opt WriteOptions) error {
	return writeFile(path, m, opt, maxProtoSize)
}

// extSlot is one tensor written to an external file.
type extSlot struct {
	t      *pb.TensorProto
	data   []byte // t's raw_data, kept here while t is swapped to its written form
	ref    extRef
	moved  bool // newly moved out by this write
	offset int64
}

// extFile is one external data file being written.
type extFile struct {
	location string
	slots    []*extSlot
}

func writeFile(path string, m *pb.ModelProto, opt WriteOptions, limit int64) error {
	if m == nil {
		return fmt.Errorf("%s: nil model", path)
	}
	if path == "" {
		return errors.New("write: empty path")
	}
	moveTo := opt.ExternalDataFile
	if moveTo == "" {
		moveTo = filepath.Base(path) + ".data"
	}
	if err := checkExtLocation(moveTo); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	// Collect the external tensors and the initializers to move out.
	var files []*extFile
	byLoc := map[string]*extFile{}
	fileFor := func(loc string) *extFile {
		key := filepath.Clean(filepath.FromSlash(loc)) // "w.bin" and "./w.bin" are one file
		f := byLoc[key]
		if f == nil {
			f = &extFile{location: loc}
			byLoc[key] = f
			files = append(files, f)
		}
		return f
	}
	seen := map[*pb.TensorProto]bool{}
	var candidates []*pb.TensorProto // inline initializers that may be moved
	err := forEachTensor(m, func(t *pb.TensorProto, init bool) error {
		if seen[t] {
			return nil
		}
		seen[t] = true
		if isExternalTensor(t) {
			if t.RawData == nil {
				return fmt.Errorf("tensor %q: external data was not loaded (read the model with ReadFile)", t.GetName())
			}
			ref, err := parseExtRef(t)
			if err != nil {
				return err
			}
			f := fileFor(ref.location)
			f.slots = append(f.slots, &extSlot{t: t, data: t.RawData, ref: ref})
			return nil
		}
		if init && len(t.RawData) > 0 {
			candidates = append(candidates, t)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	move := func(minSize int64) {
		kept := candidates[:0]
		for _, t := range candidates {
			if int64(len(t.RawData)) >= minSize {
				f := fileFor(moveTo)
				f.slots = append(f.slots, &extSlot{t: t, data: t.RawData, moved: true})
			} else {
				kept = append(kept, t)
			}
		}
		candidates = kept
	}
	if opt.ExternalDataThreshold > 0 {
		move(opt.ExternalDataThreshold)
	}

	var sw tensorSwaps
	defer sw.restore()
	apply := func() {
		for _, f := range files {
			f.layout()
			for _, s := range f.slots {
				sw.set(s.t, s.entries(f.location), nil)
			}
		}
	}
	apply()
	if proto.Size(m) > int(limit) && len(candidates) > 0 {
		sw.restore()
		move(spillThreshold)
		apply()
	}
	data, err := encodeParts(m)
	if err == nil && data.n > limit {
		err = fmt.Errorf("model is %d bytes, over protobuf's 2 GB limit even with large initializers stored externally", data.n)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	dir := filepath.Dir(path)
	absModel, _ := filepath.Abs(path)
	for _, f := range files {
		target := filepath.Join(dir, filepath.FromSlash(f.location))
		if abs, _ := filepath.Abs(target); abs == absModel {
			return fmt.Errorf("%s: external data location %q is the model file itself", path, f.location)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("%s: external data: %w", path, err)
		}
		if err := writeAtomic(target, opt.Sync, f.writeTo); err != nil {
			return fmt.Errorf("%s: external data: %w", path, err)
		}
	}
	if err := writeAtomic(path, opt.Sync, func(w *os.File) error { return data.writeTo(w, opt.Sync) }); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// layout gives every slot of f its offset. If the recorded offsets of the tensors already in
// the file still fit their data, they are kept and moved tensors are appended at aligned
// offsets; otherwise the whole file is laid out afresh.
func (f *extFile) layout() {
	var old, moved []*extSlot
	for _, s := range f.slots {
		if s.moved {
			moved = append(moved, s)
		} else {
			old = append(old, s)
		}
	}
	if keepableLayout(old, len(moved) > 0) {
		end := int64(0)
		for _, s := range old {
			s.offset = s.ref.offset
			end = max(end, s.offset+int64(len(s.data)))
		}
		for _, s := range moved {
			s.offset = alignExternal(end)
			end = s.offset + int64(len(s.data))
		}
		return
	}
	end := int64(0)
	for _, s := range f.slots {
		s.moved = true // rewrite its entries
		s.offset = alignExternal(end)
		end = s.offset + int64(len(s.data))
	}
}

// keepableLayout reports whether slots can be written at their recorded offsets: each length entry
// matches the data, regions do not overlap (identical regions with identical data may be
// shared), and a tensor without a length entry (to the end of the file) is the last one.
func keepableLayout(slots []*extSlot, appending bool) bool {
	sorted := slices.Clone(slots)
	slices.SortStableFunc(sorted, func(a, b *extSlot) int {
		switch {
		case a.ref.offset < b.ref.offset:
			return -1
		case a.ref.offset > b.ref.offset:
			return 1
		}
		return 0
	})
	for i, s := range sorted {
		n := int64(len(s.data))
		if s.ref.length >= 0 && s.ref.length != n {
			return false
		}
		if s.ref.length < 0 && (appending || i != len(sorted)-1) {
			return false
		}
		if i == 0 {
			continue
		}
		p := sorted[i-1]
		pn := int64(len(p.data))
		if s.ref.offset < p.ref.offset+pn {
			if s.ref.offset != p.ref.offset || n != pn || !bytes.Equal(s.data, p.data) {
				return false
			}
		}
	}
	return true
}

func alignExternal(n int64) int64 {
	return (n + externalAlign - 1) / externalAlign * externalAlign
}

// entries returns the external_data entries to write for s in file loc: the recorded ones if
// s keeps its place, else the recorded ones with offset and length replaced (and a now stale
// checksum dropped), or location/offset/length for a newly moved tensor.
func (s *extSlot) entries(loc string) []*pb.StringStringEntryProto {
	if !s.moved {
		return s.t.ExternalData
	}
	off := strconv.FormatInt(s.offset, 10)
	n := strconv.FormatInt(int64(len(s.data)), 10)
	if !isExternalTensor(s.t) {
		return []*pb.StringStringEntryProto{extEntry("location", loc), extEntry("offset", off), extEntry("length", n)}
	}
	var out []*pb.StringStringEntryProto
	hasOff, hasLen := false, false
	for _, e := range s.t.ExternalData {
		switch e.GetKey() {
		case "offset":
			out, hasOff = append(out, extEntry("offset", off)), true
		case "length":
			out, hasLen = append(out, extEntry("length", n)), true
		case "checksum":
		default:
			out = append(out, e)
		}
	}
	if !hasOff {
		out = append(out, extEntry("offset", off))
	}
	if !hasLen {
		out = append(out, extEntry("length", n))
	}
	return out
}

func extEntry(k, v string) *pb.StringStringEntryProto {
	return &pb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)}
}

// writeTo writes every slot's data at its offset; gaps stay zero.
func (f *extFile) writeTo(w *os.File) error {
	end := int64(0)
	for _, s := range f.slots {
		if _, err := w.WriteAt(s.data, s.offset); err != nil {
			return err
		}
		end = max(end, s.offset+int64(len(s.data)))
	}
	return w.Truncate(end)
}

// WriteAtomic writes data to path as Save writes a model: through a temporary file renamed into
// place, fsynced first when sync is set. For the files that go beside a model (reports, charts), so
// that they follow the same --sync contract.
func WriteAtomic(path string, data []byte, sync bool) error {
	err := writeAtomic(path, sync, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeAtomic writes path through a temporary file in the same directory: fill, fsync (if sync),
// rename, then fsync the directory (if sync). The fsync comes before the rename: without it a
// crash could leave path renamed but empty, which is worse than the old file. It is cheap as far
// as fill started the writeback early (see parts.writeTo), but for a large model it is still a
// good part of WriteFile's time: the disk writes more slowly than memory copies. A file that path
// replaces is freed in the background (see holdReplaced).
func writeAtomic(path string, sync bool, fill func(*os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if sync {
		if err = tmp.Sync(); err != nil {
			return err
		}
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	release := holdReplaced(path)
	defer release()
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}

// tensorSwaps temporarily replaces the external-data fields of tensors and puts them back.
type tensorSwaps struct {
	saved []savedExtFields
}

type savedExtFields struct {
	t        *pb.TensorProto
	entries  []*pb.StringStringEntryProto
	location *pb.TensorProto_DataLocation
	raw      []byte
}

// set makes t an external tensor with the given entries and raw data, remembering its fields.
func (s *tensorSwaps) set(t *pb.TensorProto, entries []*pb.StringStringEntryProto, raw []byte) {
	s.saved = append(s.saved, savedExtFields{t, t.ExternalData, t.DataLocation, t.RawData})
	t.ExternalData = entries
	t.DataLocation = pb.TensorProto_EXTERNAL.Enum()
	t.RawData = raw
}

// restore puts back every saved tensor, latest first.
func (s *tensorSwaps) restore() {
	for i := len(s.saved) - 1; i >= 0; i-- {
		v := s.saved[i]
		v.t.ExternalData, v.t.DataLocation, v.t.RawData = v.entries, v.location, v.raw
	}
	s.saved = s.saved[:0]
}

// tensorFunc is called for every dense tensor of a model; init says whether it is an entry of
// some graph's initializer list.
type tensorFunc func(t *pb.TensorProto, init bool) error

// forEachTensor calls fn for every TensorProto of m: initializers, sparse initializers, tensor and
// sparse-tensor attributes, subgraphs of graph attributes, training info and functions.
func forEachTensor(m *pb.ModelProto, fn tensorFunc) error {
	if err := graphTensors(m.GetGraph(), fn); err != nil {
		return err
	}
	for _, ti := range m.GetTrainingInfo() {
		if err := graphTensors(ti.GetInitialization(), fn); err != nil {
			return err
		}
		if err := graphTensors(ti.GetAlgorithm(), fn); err != nil {
			return err
		}
	}
	for _, f := range m.GetFunctions() {
		for _, n := range f.GetNode() {
			if err := nodeTensors(n, fn); err != nil {
				return err
			}
		}
		for _, a := range f.GetAttributeProto() {
			if err := attrTensors(a, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func graphTensors(g *pb.GraphProto, fn tensorFunc) error {
	if g == nil {
		return nil
	}
	for _, t := range g.Initializer {
		if t != nil {
			if err := fn(t, true); err != nil {
				return err
			}
		}
	}
	for _, s := range g.SparseInitializer {
		if err := sparseTensors(s, fn); err != nil {
			return err
		}
	}
	for _, n := range g.Node {
		if err := nodeTensors(n, fn); err != nil {
			return err
		}
	}
	return nil
}

func nodeTensors(n *pb.NodeProto, fn tensorFunc) error {
	for _, a := range n.GetAttribute() {
		if err := attrTensors(a, fn); err != nil {
			return err
		}
	}
	return nil
}

func attrTensors(a *pb.AttributeProto, fn tensorFunc) error {
	if a == nil {
		return nil
	}
	if a.T != nil {
		if err := fn(a.T, false); err != nil {
			return err
		}
	}
	for _, t := range a.Tensors {
		if t != nil {
			if err := fn(t, false); err != nil {
				return err
			}
		}
	}
	if err := sparseTensors(a.SparseTensor, fn); err != nil {
		return err
	}
	for _, s := range a.SparseTensors {
		if err := sparseTensors(s, fn); err != nil {
			return err
		}
	}
	if err := graphTensors(a.G, fn); err != nil {
		return err
	}
	for _, g := range a.Graphs {
		if err := graphTensors(g, fn); err != nil {
			return err
		}
	}
	return nil
}

func sparseTensors(s *pb.SparseTensorProto, fn tensorFunc) error {
	if s == nil {
		return nil
	}
	for _, t := range []*pb.TensorProto{s.Values, s.Indices} {
		if t != nil {
			if err := fn(t, false); err != nil {
				return err
			}
		}
	}
	return nil
}

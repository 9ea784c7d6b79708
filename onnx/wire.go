package onnx

// wire.go: reading and writing model files without copying the weights more than needed.
//
// Nearly all of a model file is the raw_data of its graph initializers. protobuf's Unmarshal copies
// every bytes field out of its input and Marshal copies it into its output, so a plain read-decode
// and encode-write of a 100 MB model moves each weight byte through memory four times on top of the
// two kernel copies. Here the raw_data of large graph initializers travels separately:
//
//   - readModel parses the file's wire format, skipping each large raw_data, hands protobuf only
//     the rest of the file (with those fields left empty) and then reads the skipped data straight
//     from the file into one buffer, each at an 8-byte aligned offset so float32 data can be
//     viewed in place (see floatView);
//   - encodeParts marshals the model with those fields emptied and splices the data back in as
//     separate parts, which parts.writeTo writes to the file one after the other.
//
// Only the path model.graph.initializer[i].raw_data is treated this way; everything else (tensors
// in attributes, subgraphs, functions) goes through protobuf as usual. Both functions check that
// their bookkeeping matches the message and otherwise fall back to the plain way, so the result is
// always what proto.Unmarshal and proto.Marshal give.

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/chanopt/chanopt/onnx/pb"
)

// asideMin is the smallest raw_data that readModel and encodeParts keep out of protobuf's hands.
// Smaller ones cost less to copy than a buffer and a read call of their own. A variable for tests.
var asideMin = 4096

// Field numbers on the path model.graph.initializer.raw_data (see pb/onnx.proto).
const (
	modelGraphField       = 7
	graphInitializerField = 5
	tensorRawDataField    = 9
)

// errWire means the streaming reader met something it does not handle itself (groups, a second
// graph, a malformed length); the caller falls back to decoding the whole file with protobuf.
var errWire = errors.New("wire format not handled by the streaming reader")

// alignedBytes returns n bytes starting at an 8-byte aligned address.
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

// readModel reads and decodes the model file at path (external data not loaded). A regular file
// of more than limit bytes is refused before anything is read; it is read by streamModel, which
// reads the large initializer data straight into one buffer, or, if streamModel does not handle
// it, whole, and decoded the plain way. Anything else (a pipe, a device) is read whole, up to limit
// bytes and refused past that, and decoded the plain way. Errors are those of Decode or of
// reading, without the path.
func readModel(path string, limit int64) (*pb.ModelProto, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().IsRegular() {
		if st.Size() > limit {
			return nil, fmt.Errorf("the file is %d bytes, more than the %s a protobuf message can hold, so it is not an ONNX model (large models keep their weights in external data files)", st.Size(), byteSize(limit))
		}
		if st.Size() > 0 {
			if m, err := streamModel(f, st.Size()); err == nil {
				return m, nil
			}
			// Anything unusual: decode the plain way, which also gives the proper error message.
		}
	}
	// From f, not by opening path again: a named pipe opened a second time would wait for a second
	// writer. streamModel used ReadAt, so f is still at its start.
	data, err := readLimited(f, st, limit)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// streamModel parses size bytes of model from f (then expects the end of the file): first the
// skeleton, skipping the raw_data to read aside, then that data, into one buffer, by a few
// goroutines: with more than one core free, the copies from the page cache run side by side.
func streamModel(f *os.File, size int64) (*pb.ModelProto, error) {
	s := &skeleton{r: &fileWindow{f: f, buf: make([]byte, windowMax)}, raw: map[int]*asideRead{}}
	skel, err := s.model(make([]byte, 0, 64<<10), size)
	if err != nil {
		return nil, err
	}
	if _, err := s.r.byte(); err != io.EOF {
		return nil, errWire // the file grew while being read
	}
	if err := readAside(f, s.raw); err != nil {
		return nil, errWire
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(skel, m); err != nil {
		return nil, err
	}
	if err := checkDecoded(m, int(size)); err != nil {
		return nil, err
	}
	if len(s.raw) > 0 {
		inits := m.GetGraph().GetInitializer()
		if len(inits) != s.inits {
			return nil, errWire
		}
		for i := range s.raw {
			t := inits[i]
			if t == nil || t.RawData == nil || len(t.RawData) != 0 {
				return nil, errWire
			}
		}
		for i, j := range s.raw {
			inits[i].RawData = j.data
		}
	}
	return m, nil
}

// readAside reads the raw_data of reads straight from the file into one buffer, each at an 8-byte
// aligned offset, so that float32 data can be viewed in place: in the file itself most of it is
// not (in exported models raw_data starts at any offset, about a quarter at each offset mod 4), and
// a buffer laid out as the file would need three quarters of the weights copied once more. One
// buffer, not one per tensor: a hundred large allocations of different sizes per model leave the
// heap fragmented and cost page faults on every load; the price is that the buffer lives as long
// as any of the tensors does.
func readAside(f *os.File, reads map[int]*asideRead) error {
	if len(reads) == 0 {
		return nil
	}
	list := make([]*asideRead, 0, len(reads))
	total := int64(0)
	for _, j := range reads {
		list = append(list, j)
		total += (j.n + 7) / 8 * 8
	}
	slices.SortFunc(list, func(a, b *asideRead) int { return cmp.Compare(a.off, b.off) })
	buf := alignedBytes(int(total))
	at := int64(0)
	for _, j := range list {
		j.data = buf[at : at+j.n : at+j.n]
		at += (j.n + 7) / 8 * 8
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range max(1, min(runtime.GOMAXPROCS(0), 4, len(list))) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(list)); i = next.Add(1) - 1 {
				if _, err := f.ReadAt(list[i].data, list[i].off); err != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return errWire
	}
	return nil
}

// asideRead is one raw_data read aside: n bytes at offset off of the file.
type asideRead struct {
	off, n int64
	data   []byte
}

// The window fileWindow reads through: after a skip it reads windowMin bytes (the few fields
// between two large raw_data), doubling up to windowMax while the reading goes on.
const (
	windowMin = 4 << 10
	windowMax = 128 << 10
)

// fileWindow reads a file front to back through a buffer, and skips ahead without reading.
type fileWindow struct {
	f    *os.File
	buf  []byte
	base int64 // the file offset of buf[0]
	r, w int   // buf[r:w] is read but not consumed
	next int   // how much the next fill reads
}

// fill makes sure there is something to consume: an error at the end of the file.
func (fw *fileWindow) fill() error {
	if fw.r < fw.w {
		return nil
	}
	fw.base += int64(fw.w)
	fw.r, fw.w = 0, 0
	fw.next = min(max(fw.next, windowMin), len(fw.buf))
	n, err := fw.f.ReadAt(fw.buf[:fw.next], fw.base)
	fw.next *= 2
	fw.w = n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (fw *fileWindow) byte() (byte, error) {
	if err := fw.fill(); err != nil {
		return 0, err
	}
	fw.r++
	return fw.buf[fw.r-1], nil
}

// read fills p.
func (fw *fileWindow) read(p []byte) error {
	for len(p) > 0 {
		if fw.r == fw.w && len(p) >= len(fw.buf) {
			// Large: straight into p.
			fw.base += int64(fw.w)
			fw.r, fw.w = 0, 0
			n, err := fw.f.ReadAt(p, fw.base)
			fw.base += int64(n)
			if n < len(p) {
				return err
			}
			return nil
		}
		if err := fw.fill(); err != nil {
			return err
		}
		n := copy(p, fw.buf[fw.r:fw.w])
		fw.r += n
		p = p[n:]
	}
	return nil
}

// skip passes over n bytes.
func (fw *fileWindow) skip(n int64) {
	if n <= int64(fw.w-fw.r) {
		fw.r += int(n)
		return
	}
	fw.base += int64(fw.w) + n - int64(fw.w-fw.r)
	fw.r, fw.w, fw.next = 0, 0, windowMin
}

// skeleton builds the model's bytes without the large initializer raw_data, reading from r.
type skeleton struct {
	r      *fileWindow
	off    int64              // bytes consumed from r
	graphs int                // model.graph fields seen
	inits  int                // graph.initializer fields seen
	raw    map[int]*asideRead // initializer index -> its raw_data, read aside
	last   []byte             // the bytes of the last varint read
	tag    []byte             // the bytes of the last tag read
}

func (s *skeleton) byte() (byte, error) {
	b, err := s.r.byte()
	if err != nil {
		return 0, errWire
	}
	s.off++
	return b, nil
}

// varint reads a varint, keeping its bytes as they were in last (tags and values are copied to
// the skeleton byte for byte, even when not minimally encoded).
func (s *skeleton) varint() (uint64, error) {
	var v uint64
	s.last = s.last[:0]
	for i := 0; i < 10; i++ {
		b, err := s.byte()
		if err != nil {
			return 0, err
		}
		if i == 9 && b > 1 {
			return 0, errWire // overflows 64 bits
		}
		s.last = append(s.last, b)
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errWire
}

// read fills p from r.
func (s *skeleton) read(p []byte) error {
	if err := s.r.read(p); err != nil {
		return errWire
	}
	s.off += int64(len(p))
	return nil
}

// field reads the next tag of a message that ends at end.
func (s *skeleton) field(end int64) (protowire.Number, protowire.Type, error) {
	tag, err := s.varint()
	if err != nil {
		return 0, 0, err
	}
	s.tag = append(s.tag[:0], s.last...)
	num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
	if tag>>3 > uint64(protowire.MaxValidNumber) || num < protowire.MinValidNumber || s.off > end {
		return 0, 0, errWire
	}
	return num, typ, nil
}

// length reads the length of a bytes field, which must fit before end.
func (s *skeleton) length(end int64) (int64, error) {
	n, err := s.varint()
	if err != nil {
		return 0, err
	}
	if n > uint64(end-s.off) {
		return 0, errWire
	}
	return int64(n), nil
}

// copyField appends the field whose tag was just read to dst as it is in the file.
func (s *skeleton) copyField(dst []byte, typ protowire.Type, end int64) ([]byte, error) {
	dst = append(dst, s.tag...)
	switch typ {
	case protowire.VarintType:
		if _, err := s.varint(); err != nil {
			return nil, err
		}
		return append(dst, s.last...), nil
	case protowire.Fixed32Type, protowire.Fixed64Type:
		n := 4
		if typ == protowire.Fixed64Type {
			n = 8
		}
		if int64(n) > end-s.off {
			return nil, errWire
		}
		dst = append(dst, make([]byte, n)...)
		return dst, s.read(dst[len(dst)-n:])
	case protowire.BytesType:
		n, err := s.length(end)
		if err != nil {
			return nil, err
		}
		dst = append(dst, s.last...)
		dst = append(dst, make([]byte, n)...)
		return dst, s.read(dst[len(dst)-int(n):])
	}
	return nil, errWire // groups: let protobuf deal with them
}

// message parses the body of a message of n bytes with sub, which handles the fields it knows
// (returning handled) and leaves the others to be copied.
func (s *skeleton) message(dst []byte, n int64, sub func(dst []byte, num protowire.Number, typ protowire.Type, end int64) ([]byte, bool, error)) ([]byte, error) {
	end := s.off + n
	for s.off < end {
		num, typ, err := s.field(end)
		if err != nil {
			return nil, err
		}
		var handled bool
		if sub != nil {
			if dst, handled, err = sub(dst, num, typ, end); err != nil {
				return nil, err
			}
		}
		if !handled {
			if dst, err = s.copyField(dst, typ, end); err != nil {
				return nil, err
			}
		}
	}
	if s.off != end {
		return nil, errWire
	}
	return dst, nil
}

// nested parses a length-delimited submessage with parse and appends it to dst under num.
func (s *skeleton) nested(dst []byte, num protowire.Number, end int64, parse func(n int64) ([]byte, error)) ([]byte, error) {
	n, err := s.length(end)
	if err != nil {
		return nil, err
	}
	body, err := parse(n)
	if err != nil {
		return nil, err
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, body), nil
}

func (s *skeleton) model(dst []byte, n int64) ([]byte, error) {
	return s.message(dst, n, func(dst []byte, num protowire.Number, typ protowire.Type, end int64) ([]byte, bool, error) {
		if num != modelGraphField || typ != protowire.BytesType {
			return dst, false, nil
		}
		if s.graphs++; s.graphs > 1 {
			return nil, false, errWire // merged graphs: leave them to protobuf
		}
		dst, err := s.nested(dst, num, end, func(n int64) ([]byte, error) { return s.graph(n) })
		return dst, true, err
	})
}

func (s *skeleton) graph(n int64) ([]byte, error) {
	return s.message(make([]byte, 0, 64<<10), n, func(dst []byte, num protowire.Number, typ protowire.Type, end int64) ([]byte, bool, error) {
		if num != graphInitializerField || typ != protowire.BytesType {
			return dst, false, nil
		}
		i := s.inits
		s.inits++
		dst, err := s.nested(dst, num, end, func(n int64) ([]byte, error) { return s.tensor(n, i) })
		return dst, true, err
	})
}

// tensor parses initializer i, reading a large raw_data aside and leaving the field empty.
func (s *skeleton) tensor(n int64, i int) ([]byte, error) {
	return s.message(nil, n, func(dst []byte, num protowire.Number, typ protowire.Type, end int64) ([]byte, bool, error) {
		if num != tensorRawDataField || typ != protowire.BytesType {
			return dst, false, nil
		}
		n, err := s.length(end)
		if err != nil {
			return nil, false, err
		}
		if n < int64(asideMin) {
			delete(s.raw, i) // the last raw_data field is the one that counts
			dst = append(dst, s.tag...)
			dst = append(dst, s.last...)
			dst = append(dst, make([]byte, n)...)
			return dst, true, s.read(dst[len(dst)-int(n):])
		}
		s.raw[i] = &asideRead{off: s.off, n: n}
		s.r.skip(n)
		s.off += n
		return append(append(dst, s.tag...), 0), true, nil // an empty raw_data in its place
	})
}

// streamChunk is the first buffer readLimited reads a stream into; it doubles from there.
const streamChunk = 64 << 10

// readLimited reads f, whose Stat is st, to its end, at most limit bytes (see readModel). A stream
// whose first bytes are not protobuf fields is not read further: Decode then says what is wrong,
// rather than the limit after reading up to 2 GiB (/dev/zero, a text stream with no end).
func readLimited(f *os.File, st os.FileInfo, limit int64) ([]byte, error) {
	regular := st.Mode().IsRegular()
	size := int64(streamChunk)
	if regular {
		size = st.Size() // readModel checked it against limit
	} else if st.IsDir() {
		return nil, errors.New("is a directory")
	}
	buf := make([]byte, min(size, limit))
	n := 0
	var scan streamScan
	for {
		if n == len(buf) {
			// Full: this is the end, or there is more (a stream; a file that grew since Stat).
			var probe [1]byte
			m, err := f.Read(probe[:])
			if m == 0 {
				if err == io.EOF {
					return buf[:n], nil
				}
				if err != nil {
					return nil, err
				}
				continue
			}
			if int64(n) >= limit {
				return nil, fmt.Errorf("the input is more than the %s a protobuf message can hold, so it is not an ONNX model (read %d bytes, then stopped)", byteSize(limit), n)
			}
			grown := make([]byte, min(max(2*int64(n), streamChunk), limit))
			copy(grown, buf[:n])
			grown[n] = probe[0]
			buf, n = grown, n+1
			continue
		}
		m, err := f.Read(buf[n:])
		n += m
		if !regular && !scan.fields(buf[:n]) {
			return buf[:n], nil // not protobuf: Decode gives the error
		}
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// byteSize writes a limit like maxProtoSize in words ("2 GiB").
func byteSize(n int64) string {
	if n >= 1<<30-1 {
		return fmt.Sprintf("%d GiB", (n+1)>>30)
	}
	return fmt.Sprintf("%d bytes", n)
}

// streamScan follows the top-level fields of a model as its bytes arrive, so that readLimited can
// stop reading a stream as soon as it cannot be protobuf.
type streamScan struct {
	next int  // offset of the next field's tag
	off  bool // a group was met: no more checking (Decode will tell)
}

// fields reports whether the complete fields in b (the bytes read so far) are well formed.
func (s *streamScan) fields(b []byte) bool {
	for !s.off && s.next < len(b) {
		_, typ, k := protowire.ConsumeTag(b[s.next:])
		if k < 0 {
			return protowire.ParseError(k) == io.ErrUnexpectedEOF
		}
		rest := b[s.next+k:]
		var m int
		switch typ {
		case protowire.VarintType:
			_, m = protowire.ConsumeVarint(rest)
		case protowire.Fixed32Type:
			m = 4
		case protowire.Fixed64Type:
			m = 8
		case protowire.BytesType:
			var l uint64
			l, m = protowire.ConsumeVarint(rest)
			if m > 0 {
				if l > uint64(maxProtoSize) {
					return false
				}
				m += int(l)
			}
		case protowire.StartGroupType:
			s.off = true
			return true
		default:
			return false
		}
		if m < 0 {
			return protowire.ParseError(m) == io.ErrUnexpectedEOF
		}
		s.next += k + m // may lie past b: checked once the bytes are there
	}
	return true
}

// parts is a file's bytes as a sequence of slices.
type parts struct {
	bufs [][]byte
	n    int64
}

func (p *parts) add(b []byte) {
	if len(b) > 0 {
		p.bufs = append(p.bufs, b)
		p.n += int64(len(b))
	}
}

func (p *parts) addAll(q parts) {
	p.bufs = append(p.bufs, q.bufs...)
	p.n += q.n
}

// encodeParts is encodeModel without copying the large raw_data of graph initializers: it
// marshals m with those fields empty and returns the bytes with the data spliced back in.
func encodeParts(m *pb.ModelProto) (parts, error) {
	var inits []*pb.TensorProto
	if m.Graph != nil {
		inits = m.Graph.Initializer
	}
	aside := map[*pb.TensorProto][]byte{}
	for _, t := range inits {
		if t != nil && len(t.RawData) >= asideMin && aside[t] == nil {
			aside[t] = t.RawData
			t.RawData = []byte{}
		}
	}
	skel, err := proto.MarshalOptions{}.Marshal(m)
	for t, data := range aside {
		t.RawData = data
	}
	if err != nil {
		return parts{}, fmt.Errorf("encode: %w", err)
	}
	var out parts
	if len(aside) > 0 {
		out, err = splice(skel, inits, aside)
	} else {
		out.add(skel)
	}
	if err != nil {
		// Cannot happen with protobuf's marshal order; the plain way is always right.
		b, err := encodeModel(m)
		if err != nil {
			return parts{}, err
		}
		out = parts{}
		out.add(b)
	}
	if out.n > maxProtoSize {
		return parts{}, fmt.Errorf("encode: model is %d bytes, over protobuf's 2 GB limit (WriteFile moves large initializers to external data)", out.n)
	}
	return out, nil
}

// splice puts the raw_data of the initializers in aside back into skel, the marshalled model.
func splice(skel []byte, inits []*pb.TensorProto, aside map[*pb.TensorProto][]byte) (parts, error) {
	seen := 0
	tensor := func(body []byte, data []byte) (parts, error) {
		var out parts
		hit := false
		err := walk(body, func(num protowire.Number, typ protowire.Type, field, value []byte) (parts, bool, error) {
			if num != tensorRawDataField || typ != protowire.BytesType {
				return parts{}, false, nil
			}
			if hit || len(value) != 0 {
				return parts{}, false, errWire
			}
			hit = true
			var p parts
			p.add(protowire.AppendVarint(protowire.AppendTag(nil, num, typ), uint64(len(data))))
			p.add(data)
			return p, true, nil
		}, &out)
		if err == nil && !hit {
			err = errWire
		}
		return out, err
	}
	graph := func(body []byte) (parts, error) {
		var out parts
		err := walk(body, func(num protowire.Number, typ protowire.Type, field, value []byte) (parts, bool, error) {
			if num != graphInitializerField || typ != protowire.BytesType {
				return parts{}, false, nil
			}
			i := seen
			seen++
			if i >= len(inits) {
				return parts{}, false, errWire
			}
			data, ok := aside[inits[i]]
			if !ok {
				return parts{}, false, nil
			}
			p, err := tensor(value, data)
			return wrap(num, p), true, err
		}, &out)
		return out, err
	}
	var out parts
	err := walk(skel, func(num protowire.Number, typ protowire.Type, field, value []byte) (parts, bool, error) {
		if num != modelGraphField || typ != protowire.BytesType {
			return parts{}, false, nil
		}
		p, err := graph(value)
		return wrap(num, p), true, err
	}, &out)
	if err == nil && seen != len(inits) {
		err = errWire
	}
	return out, err
}

// wrap prefixes a message's parts with its field tag and length.
func wrap(num protowire.Number, body parts) parts {
	var out parts
	out.add(protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.BytesType), uint64(body.n)))
	out.addAll(body)
	return out
}

// walk goes through the fields of the message b, appending each to out: as it is, or as fn
// replaces it (fn gets the field's bytes and, for bytes fields, its value).
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, field, value []byte) (parts, bool, error), out *parts) error {
	start := 0 // of the fields not yet added
	for pos := 0; pos < len(b); {
		num, typ, n := protowire.ConsumeTag(b[pos:])
		if n < 0 {
			return errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, b[pos+n:])
		if m < 0 {
			return errWire
		}
		field := b[pos : pos+n+m]
		var value []byte
		if typ == protowire.BytesType {
			value, _ = protowire.ConsumeBytes(b[pos+n:])
		}
		p, replaced, err := fn(num, typ, field, value)
		if err != nil {
			return err
		}
		if replaced {
			out.add(b[start:pos])
			out.addAll(p)
			start = pos + n + m
		}
		pos += n + m
	}
	out.add(b[start:])
	return nil
}

// writebackChunk is how much writeTo writes before it asks the kernel to start writing it to
// disk, so that the fsync at the end finds little left to do.
const writebackChunk = 8 << 20

// writeTo writes the parts to w from its start, starting the writeback as it goes if it is to be
// synced.
func (p parts) writeTo(w *os.File, sync bool) error {
	preallocate(w, p.n)
	var off, flushed int64
	for _, b := range p.bufs {
		for len(b) > 0 {
			n := min(len(b), writebackChunk)
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			b, off = b[n:], off+int64(n)
			if sync && off-flushed >= writebackChunk {
				startWriteback(w, flushed, off-flushed)
				flushed = off
			}
		}
	}
	return nil
}

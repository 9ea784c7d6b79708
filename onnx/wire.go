package onnx

// wire.go: reading and writing model files without copying the weights more than needed.
//
// Nearly all of a model file is the raw_data of its graph initializers. protobuf's Unmarshal copies
// every bytes field out of its input and Marshal copies it into its output, so a plain read-decode
// and encode-write of a 100 MB model moves each weight byte through memory four times on top of the
// two kernel copies. Here the raw_data of large graph initializers travels separately:
//
//   - readModel reads the file into one buffer, hands protobuf a skeleton of it (the same fields
//     with those raw_data left empty) and points each raw_data at its bytes in the buffer; float32
//     data that does not start at a multiple of 4 is copied instead, so that every float32 tensor
//     can be viewed in place (see floatView);
//   - encodeParts marshals the model with those fields emptied and splices the data back in as
//     separate parts, which parts.writeTo writes to the file one after the other.
//
// Only the path model.graph.initializer[i].raw_data is treated this way; everything else (tensors
// in attributes, subgraphs, functions) goes through protobuf as usual. Both functions check that
// their bookkeeping matches the message and otherwise fall back to the plain way, so the result is
// always what proto.Unmarshal and proto.Marshal give.

import (
	"errors"
	"fmt"
	"io"
	"os"
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

// errWire means the skeleton maker or splice met something they do not handle themselves (a
// second graph field, a malformed length); the caller falls back to plain protobuf.
var errWire = errors.New("wire format not handled here")

// alignedBytes returns n bytes starting at an 8-byte aligned address.
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

// readModel reads the model file at path into memory and decodes it (external data not loaded),
// the raw_data of large graph initializers as views of the buffer it read (see decodeInPlace). A
// regular file of more than limit bytes is refused before anything is read; a stream (a pipe, a
// device) is read up to limit bytes and refused past that. Errors do not name path.
func readModel(path string, limit int64) (*pb.ModelProto, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readLimited(f, limit)
	if err != nil {
		return nil, err
	}
	return decodeInPlace(data)
}

// streamChunk is the first buffer readLimited reads a stream into; it doubles from there.
const streamChunk = 64 << 10

// readLimited reads f to its end into one 8-byte aligned buffer, at most limit bytes (see
// readModel). A stream whose first bytes are not protobuf fields is not read further: Decode then
// says what is wrong, rather than the cap after reading up to 2 GiB (/dev/zero, a text stream
// with no end).
func readLimited(f *os.File, limit int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	regular := st.Mode().IsRegular()
	size := int64(streamChunk)
	if regular {
		if st.Size() > limit {
			return nil, fmt.Errorf("the file is %d bytes, more than the %s a protobuf message can hold, so it is not an ONNX model (large models keep their weights in external data files)", st.Size(), byteSize(limit))
		}
		size = st.Size()
	} else if st.IsDir() {
		return nil, errors.New("is a directory")
	}
	buf := alignedBytes(int(min(size, limit)))
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
			grown := alignedBytes(int(min(max(2*int64(n), streamChunk), limit)))
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

// decodeInPlace decodes a model like Decode, except that the raw_data of large graph initializers
// are not copied: each is a slice of data, with its capacity cut at its end. float32 raw_data at
// an address that is not a multiple of 4 is copied instead (into one buffer for all of them), so
// that the IR can view every float32 tensor in place (see floatView). The model keeps data
// allocated as long as any of those tensors is referenced.
//
// protobuf is given a skeleton of data: the same bytes with those raw_data fields left empty.
// Anything the skeleton cannot be made for, or whose decoding does not match it, is decoded the
// plain way, which also gives the error messages.
func decodeInPlace(data []byte) (*pb.ModelProto, error) {
	if len(data) == 0 {
		return Decode(data)
	}
	sk := &skeleton{data: data}
	skel, err := sk.rewrite(0, len(data), make([]byte, 0, 64<<10), sk.modelField)
	if err != nil {
		return Decode(data)
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(skel, m); err != nil {
		return Decode(data)
	}
	if err := checkDecoded(m, len(data)); err != nil {
		return Decode(data)
	}
	if len(sk.aside) == 0 {
		return m, nil
	}
	inits := m.GetGraph().GetInitializer()
	if len(inits) != sk.inits {
		return Decode(data)
	}
	misaligned := 0
	for _, a := range sk.aside {
		t := inits[a.init]
		if t == nil || t.RawData == nil || len(t.RawData) != 0 {
			return Decode(data)
		}
		if a.misalignedFloats(data, t) {
			misaligned += (a.n + 7) &^ 7
		}
	}
	copies := alignedBytes(misaligned)
	for _, a := range sk.aside {
		t := inits[a.init]
		raw := data[a.off : a.off+a.n : a.off+a.n]
		if a.misalignedFloats(data, t) {
			raw = copies[:a.n:a.n]
			copy(raw, data[a.off:])
			copies = copies[(a.n+7)&^7:]
		}
		t.RawData = raw
	}
	return m, nil
}

// asideSpan is the raw_data of graph initializer number init: n bytes at offset off of the file.
type asideSpan struct {
	init, off, n int
}

// misalignedFloats reports whether a is float32 data that does not start at a multiple of 4.
func (a asideSpan) misalignedFloats(data []byte, t *pb.TensorProto) bool {
	return DataType(t.GetDataType()) == Float && uintptr(unsafe.Pointer(unsafe.SliceData(data[a.off:])))%4 != 0
}

// skeleton makes the skeleton of a model file held in data (see decodeInPlace).
type skeleton struct {
	data   []byte
	graphs int         // model.graph fields seen
	inits  int         // graph.initializer fields seen
	aside  []asideSpan // the raw_data left out, in file order
}

// fieldFunc appends its own form of a field to dst and reports true, or reports false to have
// the field copied as it is. The field's value is data[vs:ve] when typ is BytesType.
type fieldFunc func(dst []byte, num protowire.Number, typ protowire.Type, vs, ve int) ([]byte, bool, error)

// rewrite appends to dst the fields of the message data[start:end], each as fn makes it or as it
// is in data (tags and values byte for byte, even when not minimally encoded).
func (s *skeleton) rewrite(start, end int, dst []byte, fn fieldFunc) ([]byte, error) {
	for pos := start; pos < end; {
		num, typ, k := protowire.ConsumeTag(s.data[pos:end])
		if k < 0 {
			return nil, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, s.data[pos+k:end])
		if m < 0 {
			return nil, errWire
		}
		vs, ve := pos+k, pos+k+m
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(s.data[pos+k : ve])
			vs = ve - len(v)
		}
		out, handled, err := fn(dst, num, typ, vs, ve)
		if err != nil {
			return nil, err
		}
		if handled {
			dst = out
		} else {
			dst = append(dst, s.data[pos:ve]...)
		}
		pos = ve
	}
	return dst, nil
}

// nested appends the submessage data[vs:ve], rewritten by fn, to dst as field num.
func (s *skeleton) nested(dst []byte, num protowire.Number, vs, ve int, fn fieldFunc) ([]byte, error) {
	body, err := s.rewrite(vs, ve, nil, fn)
	if err != nil {
		return nil, err
	}
	return protowire.AppendBytes(protowire.AppendTag(dst, num, protowire.BytesType), body), nil
}

func (s *skeleton) modelField(dst []byte, num protowire.Number, typ protowire.Type, vs, ve int) ([]byte, bool, error) {
	if num != modelGraphField || typ != protowire.BytesType {
		return dst, false, nil
	}
	if s.graphs++; s.graphs > 1 {
		return nil, false, errWire // protobuf merges repeated graphs: leave that to it
	}
	dst, err := s.nested(dst, num, vs, ve, s.graphField)
	return dst, true, err
}

func (s *skeleton) graphField(dst []byte, num protowire.Number, typ protowire.Type, vs, ve int) ([]byte, bool, error) {
	if num != graphInitializerField || typ != protowire.BytesType {
		return dst, false, nil
	}
	i := s.inits
	s.inits++
	dst, err := s.nested(dst, num, vs, ve, func(dst []byte, num protowire.Number, typ protowire.Type, vs, ve int) ([]byte, bool, error) {
		return s.tensorField(i, dst, num, typ, vs, ve)
	})
	return dst, true, err
}

// tensorField leaves a large raw_data of initializer i out, with an empty raw_data in its place.
func (s *skeleton) tensorField(i int, dst []byte, num protowire.Number, typ protowire.Type, vs, ve int) ([]byte, bool, error) {
	if num != tensorRawDataField || typ != protowire.BytesType {
		return dst, false, nil
	}
	last := len(s.aside) > 0 && s.aside[len(s.aside)-1].init == i
	if ve-vs < asideMin {
		if last { // the last raw_data field is the one that counts
			s.aside = s.aside[:len(s.aside)-1]
		}
		return dst, false, nil
	}
	a := asideSpan{init: i, off: vs, n: ve - vs}
	if last {
		s.aside[len(s.aside)-1] = a
	} else {
		s.aside = append(s.aside, a)
	}
	return protowire.AppendVarint(protowire.AppendTag(dst, num, typ), 0), true, nil
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

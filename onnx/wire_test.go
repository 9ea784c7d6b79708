package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx/pb"
)

// withAsideMin runs f with asideMin set to n.
func withAsideMin(n int, f func()) {
	old := asideMin
	asideMin = n
	defer func() { asideMin = old }()
	f()
}

// wireModels are the model files the wire tests read: the conformance models, the bundled ones,
// and the zoo when it is there.
func wireModels(t *testing.T) []string {
	paths := append(onnxTestdataModels(t), testenv.BundledModels(t)...)
	zoo, _ := filepath.Glob(filepath.Join(testenv.ZooDir(), "*.onnx"))
	return append(paths, zoo...)
}

// TestStreamedReadAndWrite checks that ReadFile (which reads large initializer data aside) gives
// what Decode gives, that data 8-byte aligned, and that WriteFile (which writes it from where it
// is) writes the file's bytes back, with every raw_data read and written aside (asideMin 1) and
// with the default asideMin.
func TestStreamedReadAndWrite(t *testing.T) {
	paths := wireModels(t)
	dir := t.TempDir()
	for _, threshold := range []int{1, asideMin} {
		withAsideMin(threshold, func() {
			aside := 0
			for _, p := range paths {
				want := fileMustRead(t, p)
				plain, err := Decode(want)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				m, err := ReadFile(p)
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				if !proto.Equal(m, plain) {
					t.Errorf("asideMin %d: %s: ReadFile differs from Decode", threshold, p)
					continue
				}
				for _, init := range m.GetGraph().GetInitializer() {
					if len(init.RawData) >= threshold && init.GetDataLocation() != pb.TensorProto_EXTERNAL {
						aside++
						if uintptr(unsafe.Pointer(unsafe.SliceData(init.RawData)))%8 != 0 {
							t.Errorf("%s: %s: raw_data read aside is not 8-byte aligned", p, init.GetName())
						}
					}
				}
				// Writing every file would take long: all with asideMin 1, the large ones otherwise.
				if threshold != 1 && len(want) < 1<<20 {
					continue
				}
				out := filepath.Join(dir, filepath.Base(filepath.Dir(p))+"-"+filepath.Base(p))
				if filepath.Base(p) != "model.onnx" {
					out = filepath.Join(dir, filepath.Base(p))
				}
				if err := WriteFile(out, m, WriteOptions{}); err != nil {
					t.Errorf("%s: WriteFile: %v", p, err)
					continue
				}
				if !bytes.Equal(fileMustRead(t, out), want) {
					t.Errorf("asideMin %d: %s: WriteFile(ReadFile(f)) differs from f", threshold, p)
				}
				if !proto.Equal(m, plain) {
					t.Errorf("%s: WriteFile changed the model", p)
				}
				os.Remove(out)
			}
			if aside == 0 {
				t.Errorf("asideMin %d: no raw_data was read aside", threshold)
			}
		})
	}
}

// TestReadAsideOneBuffer: the large initializer raw_data of a model file, which start at every
// offset mod 4 in the file, are read into one buffer, each 8-byte aligned (so float32 data is
// viewed in place, never copied again), with its capacity cut at its end.
func TestReadAsideOneBuffer(t *testing.T) {
	var inits []byte
	names := []string{"a", "bb", "ccc", "dddd", "eeeee", "ffffff", "ggggggg"} // the lengths move each raw_data's offset
	for i, name := range names {
		inits = append(inits, wireInit(wireTensor(name, 2048, fileFloatRaw(2048, float32(i))))...)
	}
	file := wireModel(inits)
	p := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int]bool{}
	var prevEnd uintptr
	for i, init := range m.Graph.Initializer {
		raw := init.RawData
		at := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
		offsets[bytes.Index(file, raw)%4] = true
		if !bytes.Equal(raw, fileFloatRaw(2048, float32(i))) {
			t.Errorf("%s: wrong data", init.GetName())
		}
		if at%8 != 0 || cap(raw) != len(raw) {
			t.Errorf("%s: raw_data at %#x with capacity %d for %d bytes, want 8-byte aligned and no room past its end", init.GetName(), at, cap(raw), len(raw))
		}
		if _, ok := floatView(raw); !ok {
			t.Errorf("%s: float32 raw_data cannot be viewed in place", init.GetName())
		}
		if i > 0 && (at < prevEnd || at-prevEnd >= 8) {
			t.Errorf("%s: raw_data at %#x, the previous one ends at %#x: not one buffer", init.GetName(), at, prevEnd)
		}
		prevEnd = at + uintptr(len(raw))
	}
	if len(offsets) != 4 {
		t.Errorf("the file's raw_data start at %d of the 4 offsets mod 4: the test must see all", len(offsets))
	}
}

// wireTensor encodes a float TensorProto with the given raw_data fields, in order.
func wireTensor(name string, n int, raws ...[]byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(Float))
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, name)
	for _, r := range raws {
		b = protowire.AppendTag(b, tensorRawDataField, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	}
	return b
}

// wireModel wraps graph fields (already encoded) into a model with ir_version 8.
func wireModel(graphs ...[]byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 8)
	for _, g := range graphs {
		b = protowire.AppendTag(b, modelGraphField, protowire.BytesType)
		b = protowire.AppendBytes(b, g)
	}
	return b
}

func wireInit(tensor []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, graphInitializerField, protowire.BytesType), tensor)
}

// TestReadOddFiles feeds ReadFile wire forms protobuf allows but writers rarely produce,
// and broken ones: it must agree with Decode every time (same message, or an error both ways).
func TestReadOddFiles(t *testing.T) {
	big := fileFloatRaw(2048, 1)
	big2 := fileFloatRaw(2048, -3)
	small := fileFloatRaw(4, 9)
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 7)
	group := protowire.AppendTag(protowire.AppendTag(nil, 998, protowire.StartGroupType), 998, protowire.EndGroupType)
	// A tag written with a needlessly long varint: ir_version as 0x88 0x00.
	longTag := append([]byte{0x88, 0x00}, 8)
	cases := map[string][]byte{
		"plain":                  wireModel(wireInit(wireTensor("w", 2048, big))),
		"two inits":              wireModel(append(wireInit(wireTensor("a", 2048, big)), wireInit(wireTensor("b", 2048, big2))...)),
		"raw twice, big last":    wireModel(wireInit(wireTensor("w", 2048, big2, big))),
		"raw twice, small last":  wireModel(wireInit(wireTensor("w", 4, big, small))),
		"raw twice, small first": wireModel(wireInit(wireTensor("w", 2048, small, big))),
		"two graph fields":       wireModel(wireInit(wireTensor("a", 2048, big)), wireInit(wireTensor("b", 2048, big2))),
		"unknown fields":         append(wireModel(append(wireInit(append(wireTensor("w", 2048, big), unknown...)), unknown...)), unknown...),
		"group in tensor":        wireModel(wireInit(append(wireTensor("w", 2048, big), group...))),
		"long tag":               append(longTag, wireModel(wireInit(wireTensor("w", 2048, big)))[2:]...),
		"truncated in raw":       wireModel(wireInit(wireTensor("w", 2048, big)))[:3000],
		"init longer than graph": wireModel(wireInit(wireTensor("w", 2048, big))[:100]),
		"trailing garbage":       append(wireModel(wireInit(wireTensor("w", 2048, big))), 0xff),
		"empty raw":              wireModel(wireInit(wireTensor("w", 0, []byte{}))),
		"odd length raw":         wireModel(wireInit(wireTensor("w", 2048, append(slices.Clone(big), 1)))),
		"raw as varint":          wireModel(wireInit(append(wireTensor("w", 0), protowire.AppendVarint(protowire.AppendTag(nil, tensorRawDataField, protowire.VarintType), 5)...))),
		"graph as varint":        append(wireModel(), protowire.AppendVarint(protowire.AppendTag(nil, modelGraphField, protowire.VarintType), 5)...),
		"initializer as fixed64": wireModel(protowire.AppendFixed64(protowire.AppendTag(nil, graphInitializerField, protowire.Fixed64Type), 5)),
		"overlong varint":        append(wireModel(wireInit(wireTensor("w", 2048, big))), 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
		"field number zero":      append(wireModel(wireInit(wireTensor("w", 2048, big))), 0x00, 0x01),
		"big raw in node attr":   wireModel(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), wireTensor("c", 2048, big))))),
	}
	dir := t.TempDir()
	for name, data := range cases {
		p := filepath.Join(dir, "m.onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want, werr := Decode(data)
		got, gerr := ReadFile(p)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: Decode error %v, ReadFile error %v", name, werr, gerr)
			continue
		}
		if werr != nil {
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: ReadFile differs from Decode", name)
			continue
		}
		if err := WriteFile(p, got, WriteOptions{}); err != nil {
			t.Errorf("%s: WriteFile: %v", name, err)
			continue
		}
		plain, _ := proto.Marshal(want)
		if !bytes.Equal(fileMustRead(t, p), plain) {
			t.Errorf("%s: WriteFile differs from proto.Marshal", name)
		}
	}
}

// wireAliasProto is y = (x + w1) * w2 + b, with w1 and w2 of 5000 floats (large enough to be read
// aside and viewed in place) and b of one.
func wireAliasProto() *pb.ModelProto {
	m := fileSmallModel()
	g := m.Graph
	g.Initializer = []*pb.TensorProto{fileFloatTensor("w1", 5000, 1), fileFloatTensor("w2", 5000, -7), fileFloatTensor("b", 1, 3)}
	g.Node = []*pb.NodeProto{
		{Input: []string{"x", "w1"}, Output: []string{"t"}, OpType: proto.String("Add")},
		{Input: []string{"t", "w2"}, Output: []string{"u"}, OpType: proto.String("Mul")},
		{Input: []string{"u", "b"}, Output: []string{"y"}, OpType: proto.String("Add")},
	}
	return m
}

// wireAliasModel writes wireAliasProto and loads it.
func wireAliasModel(t *testing.T) (path string, data []byte, m *Model) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "m.onnx")
	if err := WriteFile(path, wireAliasProto(), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w1 := m.Graph.Inits["w1"]
	if unsafe.SliceData(floatBytes(w1.Floats)) != unsafe.SliceData(w1.Source.RawData) {
		t.Fatal("w1's Floats is not a view of its raw_data: the tests below would not test it")
	}
	return path, fileMustRead(t, path), m
}

func wireSaveLoad(t *testing.T, m *Model) (*Model, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.onnx")
	if err := Save(out, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	return back, fileMustRead(t, out)
}

// TestFloatViewsAreSafe: Floats may be a view of the source's raw_data, itself a view of the buffer
// the file was read into; whatever is done to it, the saved file holds the IR's values, and a
// model nothing was done to is saved byte for byte.
func TestFloatViewsAreSafe(t *testing.T) {
	t.Run("untouched", func(t *testing.T) {
		_, data, m := wireAliasModel(t)
		if _, got := wireSaveLoad(t, m); !bytes.Equal(got, data) {
			t.Error("saving an unchanged model changed its bytes")
		}
	})
	t.Run("changed in place", func(t *testing.T) {
		_, data, m := wireAliasModel(t)
		m.Graph.Inits["w1"].Floats[7] = 42
		back, got := wireSaveLoad(t, m)
		if v := back.Graph.Inits["w1"].Floats[7]; v != 42 {
			t.Errorf("w1[7] = %v after saving, want 42", v)
		}
		if v := back.Graph.Inits["w1"].Floats[8]; v != 8*0.5+1 {
			t.Errorf("w1[8] = %v after saving, want %v", v, 8*0.5+1)
		}
		if !slices.Equal(back.Graph.Inits["w2"].Floats, fileMustLoad(t, data).Graph.Inits["w2"].Floats) {
			t.Error("w2 changed")
		}
		if len(got) != len(data) || bytes.Equal(got, data) {
			t.Errorf("saved %d bytes, want %d different from the original", len(got), len(data))
		}
	})
	t.Run("replaced and sliced", func(t *testing.T) {
		_, _, m := wireAliasModel(t)
		w1, w2 := m.Graph.Inits["w1"], m.Graph.Inits["w2"]
		w1.Floats = append([]float32(nil), w1.Floats[:100]...)
		w1.Dims = []int64{100}
		w2.Floats = w2.Floats[:10] // still a view of raw_data, but of part of it
		w2.Dims = []int64{10}
		back, _ := wireSaveLoad(t, m)
		if b := back.Graph.Inits["w1"]; !slices.Equal(b.Dims, []int64{100}) || b.Floats[99] != 99*0.5+1 {
			t.Errorf("w1 after saving: dims %v, w1[99] = %v", b.Dims, b.Floats[99])
		}
		if b := back.Graph.Inits["w2"]; !slices.Equal(b.Dims, []int64{10}) || b.Floats[9] != 9*0.5-7 {
			t.Errorf("w2 after saving: dims %v, w2[9] = %v", b.Dims, b.Floats[9])
		}
	})
	t.Run("appended", func(t *testing.T) {
		_, _, m := wireAliasModel(t)
		w1 := m.Graph.Inits["w1"]
		src := w1.Source.RawData
		before := slices.Clone(src)
		w1.Floats = append(w1.Floats[:4999], 5, 6) // must not write past the end of raw_data
		w1.Dims = []int64{5001}
		if !bytes.Equal(src, before) {
			t.Fatal("append wrote into raw_data")
		}
		back, _ := wireSaveLoad(t, m)
		if b := back.Graph.Inits["w1"].Floats; len(b) != 5001 || b[4999] != 5 || b[5000] != 6 {
			t.Errorf("w1 after saving has %d values, tail %v", len(b), b[len(b)-2:])
		}
	})
	t.Run("clone", func(t *testing.T) {
		_, data, m := wireAliasModel(t)
		c := m.Clone()
		m.Graph.Inits["w1"].Floats[0] = -1 // the original changes in place, the clone keeps its copy
		back, got := wireSaveLoad(t, c)
		if v := back.Graph.Inits["w1"].Floats[0]; v != 1 {
			t.Errorf("the clone saved w1[0] = %v, want 1", v)
		}
		if !bytes.Equal(got, data) {
			t.Error("the unchanged clone did not save the original bytes")
		}
		c.Graph.Inits["w2"].Floats[0] = 77 // and the clone's changes stay its own
		if back, _ := wireSaveLoad(t, m); back.Graph.Inits["w1"].Floats[0] != -1 || back.Graph.Inits["w2"].Floats[0] != -7 {
			t.Errorf("the original saved w1[0] = %v, w2[0] = %v; want -1, -7", back.Graph.Inits["w1"].Floats[0], back.Graph.Inits["w2"].Floats[0])
		}
	})
	t.Run("retyped", func(t *testing.T) {
		_, _, m := wireAliasModel(t)
		w1 := m.Graph.Inits["w1"]
		w1.Type = Float16
		if w1.Unchanged() {
			t.Error("a float32 tensor turned float16 counts as unchanged")
		}
		back, _ := wireSaveLoad(t, m)
		if b := back.Graph.Inits["w1"]; b.Type != Float16 || b.Floats[3] != 3*0.5+1 {
			t.Errorf("w1 after saving: %v, w1[3] = %v", b.Type, b.Floats[3])
		}
	})
}

func fileMustLoad(t *testing.T, data []byte) *Model {
	t.Helper()
	mp, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Import(mp)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWriteFileReplaces writes a model over a large file (which writeAtomic frees in the background
// on Linux), with and without Sync: the file then holds the new model, and nothing is left over.
func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []WriteOptions{{Sync: true}, {}} {
		m := wireAliasProto()
		m.Graph.Initializer[0] = fileFloatTensor("w1", 5000, float32(len(m.Graph.Node)))
		if !opt.Sync {
			m.ProducerName = proto.String("nosync")
		}
		if err := WriteFile(path, m, opt); err != nil {
			t.Fatal(err)
		}
		want, _ := proto.Marshal(m)
		if !bytes.Equal(fileMustRead(t, path), want) {
			t.Errorf("Sync %v: the file does not hold the model written", opt.Sync)
		}
		fileNoTempFiles(t, dir)
	}
}

package onnx

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/chanopt/chanopt/onnx/pb"
)

// onnxTestdata is Debian's libonnx-testdata: ONNX's backend conformance models.
const onnxTestdata = "/usr/share/libonnx-testdata/data"

// onnxTestdataModels lists every model.onnx under onnxTestdata, skipping the test when the package
// is not installed (failing instead when CHANOPT_REQUIRE_ALL=1).
func onnxTestdataModels(t *testing.T) []string {
	t.Helper()
	if _, err := os.Stat(onnxTestdata); err != nil {
		if os.Getenv("CHANOPT_REQUIRE_ALL") == "1" {
			t.Fatalf("ONNX test data missing (apt-get install libonnx-testdata): %v", err)
		}
		t.Skipf("ONNX test data missing (apt-get install libonnx-testdata): %v", err)
	}
	var paths []string
	err := filepath.WalkDir(onnxTestdata, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "model.onnx" {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestRoundTripTestdata(t *testing.T) {
	paths := onnxTestdataModels(t)
	checked := 0
	for _, p := range paths {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ReadFile(p)
		if err != nil {
			t.Errorf("ReadFile: %v", err)
			continue
		}
		got, err := Encode(m)
		if err != nil {
			t.Errorf("%s: Encode: %v", p, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Encode differs from the file (%d vs %d bytes)", p, len(got), len(want))
			continue
		}
		// Deterministic marshalling only orders map entries; ONNX has no maps, so it must agree.
		det, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil || !bytes.Equal(det, want) {
			t.Errorf("%s: deterministic encodeModel differs from the file (err %v)", p, err)
			continue
		}
		checked++
	}
	t.Logf("%d of %d models round-trip byte for byte", checked, len(paths))
	if len(paths) < 1000 {
		t.Errorf("found only %d models under %s, want >= 1000", len(paths), onnxTestdata)
	}
}

// fileFloatRaw returns the little-endian bytes of n floats i*0.5 + base.
func fileFloatRaw(n int, base float32) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(i)*0.5+base))
	}
	return b
}

func fileFloatTensor(name string, n int, base float32) *pb.TensorProto {
	return &pb.TensorProto{
		Name:     proto.String(name),
		Dims:     []int64{int64(n)},
		DataType: proto.Int32(int32(pb.TensorProto_FLOAT)),
		RawData:  fileFloatRaw(n, base),
	}
}

func fileValueInfo(name string, n int64) *pb.ValueInfoProto {
	return &pb.ValueInfoProto{
		Name: proto.String(name),
		Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(pb.TensorProto_FLOAT)),
			Shape:    &pb.TensorShapeProto{Dim: []*pb.TensorShapeProto_Dimension{{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: n}}}},
		}}},
	}
}

// fileSmallModel is y = x + w1 with two more initializers: w1 and w2 are large, b is small.
func fileSmallModel() *pb.ModelProto {
	return &pb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("chanopt-test"),
		OpsetImport:  []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &pb.GraphProto{
			Name: proto.String("g"),
			Node: []*pb.NodeProto{{
				Input: []string{"x", "w1"}, Output: []string{"y"}, OpType: proto.String("Add"), Name: proto.String("add"),
			}},
			Initializer: []*pb.TensorProto{fileFloatTensor("w1", 5000, 1), fileFloatTensor("w2", 3000, -7), fileFloatTensor("b", 10, 3)},
			Input:       []*pb.ValueInfoProto{fileValueInfo("x", 5000)},
			Output:      []*pb.ValueInfoProto{fileValueInfo("y", 5000)},
		},
	}
}

func fileEntryMap(t *pb.TensorProto) map[string]string {
	m := map[string]string{}
	for _, e := range t.ExternalData {
		m[e.GetKey()] = e.GetValue()
	}
	return m
}

func fileMustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fileNoTempFiles fails if WriteFile left temporary files in dir.
func fileNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

func TestExternalThreshold(t *testing.T) {
	dir := t.TempDir()
	m := fileSmallModel()
	before := proto.Clone(m)
	out := filepath.Join(dir, "m.onnx")
	if err := WriteFile(out, m, WriteOptions{ExternalDataThreshold: 1024}); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, before) {
		t.Error("WriteFile changed the model it was given")
	}
	fileNoTempFiles(t, dir)

	// The model file refers to m.onnx.data for w1 and w2 at aligned offsets; b stays inline.
	data := fileMustRead(t, out)
	side := fileMustRead(t, filepath.Join(dir, "m.onnx.data"))
	onDisk, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, init := range onDisk.Graph.Initializer {
		orig := m.Graph.Initializer[i]
		if orig.GetName() == "b" {
			if isExternalTensor(init) || !bytes.Equal(init.RawData, orig.RawData) {
				t.Errorf("small initializer b was moved out")
			}
			continue
		}
		e := fileEntryMap(init)
		if !isExternalTensor(init) || init.RawData != nil || e["location"] != "m.onnx.data" {
			t.Fatalf("%s not stored externally: %v", init.GetName(), init)
		}
		off, _ := strconv.ParseInt(e["offset"], 10, 64)
		n, _ := strconv.ParseInt(e["length"], 10, 64)
		if off%4096 != 0 {
			t.Errorf("%s: offset %d not 4096-aligned", init.GetName(), off)
		}
		if n != int64(len(orig.RawData)) || off+n > int64(len(side)) || !bytes.Equal(side[off:off+n], orig.RawData) {
			t.Errorf("%s: side file does not hold its data at [%d, %d)", init.GetName(), off, off+n)
		}
	}

	// Reading it back gives the same values, and Encode gives the file's bytes.
	back, err := ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, init := range back.Graph.Initializer {
		if !bytes.Equal(init.RawData, m.Graph.Initializer[i].RawData) {
			t.Errorf("%s: values differ after ReadFile", init.GetName())
		}
	}
	if w1 := back.Graph.Initializer[0].RawData; math.Float32frombits(binary.LittleEndian.Uint32(w1[4*4999:])) != 4999*0.5+1 {
		t.Errorf("w1[4999] wrong after ReadFile")
	}
	enc, err := Encode(back)
	if err != nil || !bytes.Equal(enc, data) {
		t.Errorf("Encode(ReadFile(f)) differs from f (err %v)", err)
	}

	// ReadFile then WriteFile elsewhere reproduces both files.
	dir2 := filepath.Join(t.TempDir(), "sub")
	if err := os.Mkdir(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir2, "copy.onnx")
	if err := WriteFile(out2, back, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileMustRead(t, out2), data) {
		t.Error("rewritten model file differs from the original")
	}
	if !bytes.Equal(fileMustRead(t, filepath.Join(dir2, "m.onnx.data")), side) {
		t.Error("rewritten external data file differs from the original")
	}
	fileNoTempFiles(t, dir2)
}

func TestExternalRelayout(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.onnx")
	if err := WriteFile(out, fileSmallModel(), WriteOptions{ExternalDataThreshold: 1024}); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Shrink w1 (as slicing would): its recorded length no longer fits, so the file is laid out anew.
	w1 := m.Graph.Initializer[0]
	w1.RawData = fileFloatRaw(100, 9)
	w1.Dims = []int64{100}
	w2 := m.Graph.Initializer[1].RawData
	dir2 := t.TempDir()
	out2 := filepath.Join(dir2, "m.onnx")
	if err := WriteFile(out2, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(out2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Graph.Initializer[0].RawData, fileFloatRaw(100, 9)) || !bytes.Equal(back.Graph.Initializer[1].RawData, w2) {
		t.Error("values differ after relayout")
	}
	for _, init := range back.Graph.Initializer[:2] {
		e := fileEntryMap(init)
		if off, _ := strconv.ParseInt(e["offset"], 10, 64); off%4096 != 0 || e["length"] != strconv.Itoa(len(init.RawData)) {
			t.Errorf("%s: bad entries after relayout: %v", init.GetName(), e)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir2, "m.onnx.data")); err != nil || fi.Size() != 4096+int64(len(w2)) {
		t.Errorf("relaid-out side file: %v, err %v", fi, err)
	}
}

// TestExternalSpill checks that a model over the protobuf limit gets its initializers moved out
// without being asked (with a small limit standing in for 2 GB).
func TestExternalSpill(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "big.onnx")
	m := fileSmallModel()
	if err := writeFile(out, m, WriteOptions{}, 10000); err != nil {
		t.Fatal(err)
	}
	onDisk, err := Decode(fileMustRead(t, out))
	if err != nil {
		t.Fatal(err)
	}
	if !isExternalTensor(onDisk.Graph.Initializer[0]) || !isExternalTensor(onDisk.Graph.Initializer[1]) || isExternalTensor(onDisk.Graph.Initializer[2]) {
		t.Error("large initializers were not moved out")
	}
	if _, err := os.Stat(filepath.Join(dir, "big.onnx.data")); err != nil {
		t.Error(err)
	}
	if err := writeFile(filepath.Join(dir, "tiny.onnx"), m, WriteOptions{}, 100); err == nil || !strings.Contains(err.Error(), "2 GB") {
		t.Errorf("over the limit even with external data: err = %v", err)
	}
}

// fileHandMade writes a model whose external tensors sit in two files, one with junk around the
// data, referenced from an initializer, a Constant node, a sparse initializer, an If branch and a
// function. It returns the model path and the data each tensor must load.
func fileHandMade(t *testing.T, dir string) (string, map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "weights"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"w":      fileFloatRaw(16, 2),
		"c":      fileFloatRaw(2, -1),
		"tail":   fileFloatRaw(5, 4),
		"sparse": fileFloatRaw(3, 8),
		"then":   fileFloatRaw(4, 6),
		"fn":     fileFloatRaw(1, 42),
	}
	var blob []byte
	blob = append(blob, bytes.Repeat([]byte{0xAA}, 100)...)
	blob = append(blob, want["w"]...)      // [100, 164)
	blob = append(blob, want["c"]...)      // [164, 172)
	blob = append(blob, want["sparse"]...) // [172, 184)
	blob = append(blob, want["then"]...)   // [184, 200)
	blob = append(blob, want["fn"]...)     // [200, 204)
	blob = append(blob, bytes.Repeat([]byte{0x55}, 50)...)
	if err := os.WriteFile(filepath.Join(dir, "weights", "w.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tail.bin"), append([]byte("12345678"), want["tail"]...), 0o644); err != nil {
		t.Fatal(err)
	}
	ext := func(name, loc string, kv ...string) *pb.TensorProto {
		tp := &pb.TensorProto{
			Name:         proto.String(name),
			Dims:         []int64{int64(len(want[name]) / 4)},
			DataType:     proto.Int32(int32(pb.TensorProto_FLOAT)),
			DataLocation: pb.TensorProto_EXTERNAL.Enum(),
			ExternalData: []*pb.StringStringEntryProto{extEntry("location", loc)},
		}
		for i := 0; i+1 < len(kv); i += 2 {
			tp.ExternalData = append(tp.ExternalData, extEntry(kv[i], kv[i+1]))
		}
		return tp
	}
	m := fileSmallModel()
	g := m.Graph
	g.Initializer = []*pb.TensorProto{ext("w", "weights/w.bin", "offset", "100", "length", "64"), ext("tail", "tail.bin", "offset", "8")}
	g.SparseInitializer = []*pb.SparseTensorProto{{
		Values:  ext("sparse", "weights/w.bin", "offset", "172", "length", "12", "checksum", "deadbeef"),
		Indices: &pb.TensorProto{Name: proto.String("idx"), Dims: []int64{3}, DataType: proto.Int32(int32(pb.TensorProto_INT64)), Int64Data: []int64{0, 5, 9}},
		Dims:    []int64{10},
	}}
	g.Node = append(g.Node,
		&pb.NodeProto{OpType: proto.String("Constant"), Output: []string{"c"}, Attribute: []*pb.AttributeProto{{
			Name: proto.String("value"), Type: pb.AttributeProto_TENSOR.Enum(), T: ext("c", "weights/w.bin", "offset", "164", "length", "8"),
		}}},
		&pb.NodeProto{OpType: proto.String("If"), Input: []string{"cond"}, Output: []string{"z"}, Attribute: []*pb.AttributeProto{{
			Name: proto.String("then_branch"), Type: pb.AttributeProto_GRAPH.Enum(), G: &pb.GraphProto{
				Name:        proto.String("then"),
				Initializer: []*pb.TensorProto{ext("then", "weights/w.bin", "offset", "184", "length", "16")},
				Output:      []*pb.ValueInfoProto{fileValueInfo("then", 4)},
			},
		}}},
	)
	m.Functions = []*pb.FunctionProto{{
		Name: proto.String("f"), Domain: proto.String("local"),
		Node: []*pb.NodeProto{{OpType: proto.String("Constant"), Output: []string{"k"}, Attribute: []*pb.AttributeProto{{
			Name: proto.String("value"), Type: pb.AttributeProto_TENSOR.Enum(), T: ext("fn", "./weights/w.bin", "offset", "200", "length", "4"), // same file, spelt differently
		}}}},
	}}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "hand.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, want
}

func TestExternalHandMade(t *testing.T) {
	dir := t.TempDir()
	p, want := fileHandMade(t, dir)
	m, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	if err := forEachTensor(m, func(tp *pb.TensorProto, _ bool) error {
		if isExternalTensor(tp) {
			got[tp.GetName()] = tp.RawData
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if !bytes.Equal(got[name], w) {
			t.Errorf("tensor %s: loaded %x, want %x", name, got[name], w)
		}
	}
	orig := fileMustRead(t, p)
	if enc, err := Encode(m); err != nil || !bytes.Equal(enc, orig) {
		t.Errorf("Encode(ReadFile(f)) differs from f (err %v)", err)
	}

	// Written elsewhere: the same model bytes; every tensor's bytes at the same place of the
	// same file names (bytes no tensor refers to are not kept).
	dir2 := t.TempDir()
	p2 := filepath.Join(dir2, "out.onnx")
	if err := WriteFile(p2, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileMustRead(t, p2), orig) {
		t.Error("rewritten model differs from the original")
	}
	blob := fileMustRead(t, filepath.Join(dir2, "weights", "w.bin"))
	if len(blob) != 204 || !bytes.Equal(blob[100:204], fileMustRead(t, filepath.Join(dir, "weights", "w.bin"))[100:204]) {
		t.Errorf("rewritten weights/w.bin: %d bytes, tensor data differs", len(blob))
	}
	if tail := fileMustRead(t, filepath.Join(dir2, "tail.bin")); len(tail) != 28 || !bytes.Equal(tail[8:], want["tail"]) {
		t.Errorf("rewritten tail.bin wrong: %x", tail)
	}
	back, err := ReadFile(p2)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, m) {
		t.Error("ReadFile of the rewritten model differs from the model written")
	}
	fileNoTempFiles(t, dir2)

	// A model decoded without its external data cannot be written.
	dec, err := Decode(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir2, "x.onnx"), dec, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("WriteFile of unloaded external data: err = %v", err)
	}
}

func TestExternalBadLocations(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.bin"), fileFloatRaw(4, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		entries []string
		want    string
	}{
		{"parent", []string{"location", "../escape.bin"}, "escapes"},
		{"nested parent", []string{"location", "a/../../escape.bin"}, "escapes"},
		{"absolute", []string{"location", filepath.Join(outside, "secret.bin")}, "absolute"},
		{"symlink out", []string{"location", "link/secret.bin"}, "escapes"},
		{"no location", []string{"offset", "0"}, "no location"},
		{"missing file", []string{"location", "nope.bin"}, "no such file"},
		{"offset past end", []string{"location", "w.bin", "offset", "4096"}, "past the end"},
		{"length past end", []string{"location", "w.bin", "offset", "8", "length", "16"}, "past the end"},
		{"bad offset", []string{"location", "w.bin", "offset", "-1"}, "bad external data offset"},
		{"bad length", []string{"location", "w.bin", "length", "x"}, "bad external data length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "w.bin"), fileFloatRaw(4, 0), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			m := fileSmallModel()
			w := m.Graph.Initializer[0]
			w.RawData, w.Dims = nil, []int64{4}
			w.DataLocation = pb.TensorProto_EXTERNAL.Enum()
			for i := 0; i+1 < len(c.entries); i += 2 {
				w.ExternalData = append(w.ExternalData, extEntry(c.entries[i], c.entries[i+1]))
			}
			data, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "m.onnx")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = ReadFile(p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ReadFile: err = %v, want it to name %s and say %q", err, p, c.want)
			}
		})
	}

	// WriteFile refuses to put external data outside the output directory.
	dir := t.TempDir()
	for _, loc := range []string{"../escape.data", "/tmp/abs.data"} {
		err := WriteFile(filepath.Join(dir, "m.onnx"), fileSmallModel(), WriteOptions{ExternalDataThreshold: 1, ExternalDataFile: loc})
		if err == nil {
			t.Errorf("WriteFile with ExternalDataFile %q succeeded", loc)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.data")); err == nil {
		t.Error("escape.data written outside the output directory")
	}
	if err := WriteFile(filepath.Join(dir, "m.onnx"), fileSmallModel(), WriteOptions{ExternalDataThreshold: 1, ExternalDataFile: "m.onnx"}); err == nil {
		t.Error("WriteFile let external data overwrite the model file")
	}
}

// fileSampleModelBytes returns a real model from the ONNX test data, or one built here.
func fileSampleModelBytes(t *testing.T) []byte {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(onnxTestdata, "pytorch-operator", "test_operator_conv", "model.onnx")); err == nil {
		return b
	}
	b, err := Encode(fileSmallModel())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fileTensorBytes is a serialised TensorProto (like a test_data_set_*/input_0.pb), which parses as a
// ModelProto with ir_version set but must still be rejected.
func fileTensorBytes(t *testing.T) []byte {
	b, err := proto.Marshal(&pb.TensorProto{Dims: []int64{1, 1}, DataType: proto.Int32(1), RawData: fileFloatRaw(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	real := fileSampleModelBytes(t)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"truncated", real[:len(real)/2], "not an ONNX model"},
		{"text", []byte("ir_version: 8\nproducer_name: \"pytorch\"\ngraph {\n  node { op_type: \"Conv\" }\n}\n"), "text file"},
		{"text2", []byte("Hello, this is a README and not a model.\n"), "not an ONNX model"},
		{"tensor", fileTensorBytes(t), "not an ONNX model"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		b := make([]byte, 1+rng.IntN(4096))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		cases = append(cases, struct {
			name string
			data []byte
			want string
		}{"random" + strconv.Itoa(i), b, "not an ONNX model"})
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name+".onnx")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to name %s and say %q", c.name, err, p, c.want)
		}
	}
	missing := filepath.Join(dir, "missing.onnx")
	if _, err := ReadFile(missing); err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: err = %v", err)
	}
	if _, err := Decode(real); err != nil {
		t.Errorf("the untruncated model must decode: %v", err)
	}
}

// TestSaveOverSource: saving a loaded model over its own file (the CLI never does, the library
// may) writes the right bytes, and the model loaded from it keeps its values.
func TestSaveOverSource(t *testing.T) {
	path, data, m := wireAliasModel(t)
	if err := Save(path, m, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileMustRead(t, path), data) {
		t.Fatal("saving an unchanged model over its file changed the bytes")
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
		t.Error("saving a changed model over its file did not write the changed model")
	}
	if w := m.Graph.Inits["w1"].Floats; w[10] != 10*0.5+1 {
		t.Errorf("after two saves over the file, w1[10] = %v, want %v", w[10], 10*0.5+1)
	}
	fileNoTempFiles(t, filepath.Dir(path))
}

// TestLoadedModelOwnsItsData: a model file rewritten or truncated in place after Load (another
// program exporting over it) does not change the loaded model, and changes made in place to the
// model never reach the file.
func TestLoadedModelOwnsItsData(t *testing.T) {
	path, data, m := wireAliasModel(t)
	w1 := m.Graph.Inits["w1"]
	w1.Floats[0] = 42
	if !bytes.Equal(fileMustRead(t, path), data) {
		t.Fatal("an in-place change of a tensor reached the model file")
	}
	if err := os.WriteFile(path, []byte("rewritten"), 0o644); err != nil { // truncates in place
		t.Fatal(err)
	}
	if w1.Floats[4999] != 4999*0.5+1 || m.Graph.Inits["w2"].Floats[1] != 1*0.5-7 {
		t.Errorf("after the file was rewritten w1[4999], w2[1] = %v, %v", w1.Floats[4999], m.Graph.Inits["w2"].Floats[1])
	}
	w1.Floats[0] = 1
	if _, got := wireSaveLoad(t, m); !bytes.Equal(got, data) {
		t.Error("the model saved after its file was rewritten is not the original")
	}
}

package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/chanopt/chanopt/onnx/pb"
)

// FuzzDecode feeds arbitrary bytes to Decode. Decode must not panic; whatever it accepts, Encode
// must write, and decoding that again must give a model that encodes to the same bytes. The seed
// corpus in testdata/fuzz/FuzzDecode holds small real models from ONNX's test data (subgraphs,
// loops, sequences, optionals, constants, external references) and some garbage.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("Decode accepted the input but Encode failed: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			return // e.g. re-packing changed the size that the unknown-field check compares with
		}
		enc2, err := Encode(m2)
		if err != nil {
			t.Fatalf("second Encode failed: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode is not stable: %d then %d bytes", len(enc), len(enc2))
		}
	})
}

// FuzzReadModel writes arbitrary bytes to a file and reads it with readModel, which leaves large
// initializer raw_data in the buffer it read (every raw_data here: asideMin is 1): it must agree
// with Decode, and
// encodeParts, which writes that data from where it is, with Encode.
func FuzzReadModel(f *testing.F) {
	for _, m := range []*pb.ModelProto{wireAliasProto(), fileSmallModel()} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	big := fileFloatRaw(64, 1)
	f.Add(wireModel(wireInit(wireTensor("w", 64, big, big[:8]))))
	f.Add(wireModel(wireInit(wireTensor("a", 64, big)), wireInit(wireTensor("b", 64, big))))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "m.onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var got *pb.ModelProto
		var gerr error
		withAsideMin(1, func() { got, gerr = readModel(p, maxProtoSize) })
		want, werr := Decode(data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("readModel error %v, Decode error %v", gerr, werr)
		}
		if werr != nil {
			return
		}
		if !proto.Equal(got, want) {
			t.Fatal("readModel differs from Decode")
		}
		enc, err := encodeModel(want)
		if err != nil {
			return
		}
		var parts parts
		withAsideMin(1, func() { parts, err = encodeParts(got) })
		if err != nil {
			t.Fatalf("encodeModel works but encodeParts fails: %v", err)
		}
		if !bytes.Equal(bytes.Join(parts.bufs, nil), enc) {
			t.Fatal("encodeParts differs from encodeModel")
		}
	})
}

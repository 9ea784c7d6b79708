package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// runCLI runs chanopt in-process and returns exit code, stdout and stderr.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"chanopt"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// tinyModel builds a one-Conv model; dims gives the input shape (0 = symbolic) and op the middle op.
func tinyModel(t *testing.T, dims []int64, op string) []byte {
	t.Helper()
	shape := &pb.TensorShapeProto{}
	for i, d := range dims {
		dp := &pb.TensorShapeProto_Dimension{}
		if d == 0 {
			dp.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: []string{"N", "C", "H", "W"}[i]}
		} else {
			dp.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dp)
	}
	vi := func(name string, s *pb.TensorShapeProto) *pb.ValueInfoProto {
		return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(1), Shape: s}}}}
	}
	w := onnx.NewFloatTensor("w", []int64{4, 1, 3, 3}, make([]float32, 36)).ToProto()
	m := &pb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &pb.GraphProto{
			Name: proto.String("tiny"),
			Node: []*pb.NodeProto{
				{OpType: proto.String("Conv"), Input: []string{"x", "w"}, Output: []string{"y"}, Name: proto.String("conv")},
				{OpType: proto.String(op), Input: []string{"y"}, Output: []string{"z"}, Name: proto.String("act")},
			},
			Initializer: []*pb.TensorProto{w},
			Input:       []*pb.ValueInfoProto{vi("x", shape)},
			Output:      []*pb.ValueInfoProto{vi("z", nil)},
		},
	}
	if op == "FancyOp" {
		m.Graph.Node[1].Domain = proto.String("com.example")
		m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String("com.example"), Version: proto.Int64(1)})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadInputIsOneLine feeds inspect, groups and shrink every kind of bad input a user produces:
// each must exit 1 with one line naming the file, never a panic trace.
func TestBadInputIsOneLine(t *testing.T) {
	dir := t.TempDir()
	good := tinyModel(t, []int64{1, 1, 8, 8}, "Relu")
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	cases := map[string]string{
		"empty":     write(t, dir, "empty.onnx", nil),
		"truncated": write(t, dir, "truncated.onnx", good[:len(good)/2]),
		"random":    write(t, dir, "random.onnx", garbage),
		"text":      write(t, dir, "text.onnx", []byte("this is not a model\nat all\n")),
		"missing":   filepath.Join(dir, "no-such-model.onnx"),
		"symbolic":  write(t, dir, "symbolic.onnx", tinyModel(t, []int64{0, 1, 0, 0}, "Relu")),
		"directory": dir,
	}
	for name, path := range cases {
		for _, cmd := range [][]string{{"inspect", path}, {"groups", path}, {"shrink", path, "--macs", "0.5", "--no-distill", "-o", filepath.Join(dir, "out.onnx")}} {
			if name == "symbolic" && cmd[0] == "groups" {
				continue // groups needs no concrete input shape
			}
			code, _, stderr := runCLI(cmd...)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 1 || len(lines) != 1 || !strings.HasPrefix(stderr, "chanopt: ") || strings.Contains(stderr, "goroutine") {
				t.Errorf("%s %s: exit %d, stderr %q; want exit 1 and one line", cmd[0], name, code, stderr)
				continue
			}
			if !strings.Contains(stderr, filepath.Base(path)) {
				t.Errorf("%s %s: message %q does not name the file", cmd[0], name, stderr)
			}
		}
	}
}

func TestSymbolicInputNeedsInputShape(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "sym.onnx", tinyModel(t, []int64{0, 1, 0, 0}, "Relu"))
	code, _, stderr := runCLI("inspect", p)
	if code != 1 || !strings.Contains(stderr, "--input-shape") {
		t.Fatalf("exit %d, %q: want a hint to use --input-shape", code, stderr)
	}
	code, stdout, stderr := runCLI("inspect", p, "--input-shape", "x:2,1,10,10", "--json")
	if code != 0 {
		t.Fatalf("with --input-shape: exit %d, %s", code, stderr)
	}
	// 2×4×8×8 outputs × 1 input channel × 3×3 kernel
	if !strings.Contains(stdout, `"macs": 4608`) {
		t.Errorf("MACs at 2x1x10x10 wrong:\n%s", stdout)
	}
}

func TestUnknownOpStillInspects(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "custom.onnx", tinyModel(t, []int64{1, 1, 8, 8}, "FancyOp"))
	code, stdout, stderr := runCLI("inspect", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "com.example.FancyOp") || !strings.Contains(stdout, "unknown op") {
		t.Errorf("inspect does not list the unknown op:\n%s", stdout)
	}
	code, stdout, _ = runCLI("groups", p)
	if code != 0 || !strings.Contains(stdout, "not known to chanopt") {
		t.Errorf("groups on an unknown op: exit %d\n%s", code, stdout)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"inspect"}, {"shrink", "m.onnx", "--macs", "0.5", "--params", "0.5"}, {"shrink", "m.onnx", "--max-drop", "1"}, {"shrink", "m.onnx", "--macs", "2", "--no-distill"}, {"inspect", "--bogus", "m.onnx"}, {"nosuchcommand"}} {
		code, _, stderr := runCLI(args...)
		if code != 2 {
			t.Errorf("%v: exit %d (%q), want 2", args, code, stderr)
		}
	}
}

func TestShrinkNeverOverwritesInput(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "m.onnx", tinyModel(t, []int64{1, 1, 8, 8}, "Relu"))
	before, _ := os.ReadFile(p)
	code, _, stderr := runCLI("shrink", p, "--macs", "0.5", "--no-distill", "-o", p)
	if code != 1 || !strings.Contains(stderr, "overwrite") {
		t.Errorf("exit %d %q: want a refusal to overwrite", code, stderr)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Error("input model changed")
	}
}

package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// TestShapesMatchConformanceOutputs infers the shapes of every ONNX conformance model and compares
// them with the output shapes the models declare, for the ops chanopt knows.
func TestShapesMatchConformanceOutputs(t *testing.T) {
	dir := testenv.RequireConformance(t)
	models, _ := filepath.Glob(filepath.Join(dir, "node", "*", "model.onnx"))
	if len(models) == 0 {
		t.Fatalf("no conformance models under %s", dir)
	}
	checked, unknown := 0, 0
	for _, p := range models {
		mp, err := ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		// Inputs after the first become the constants their test feeds: shape inference needs the
		// values of Resize scales, Slice bounds and the like, as it gets them in exported CNNs.
		gp := mp.Graph
		for i := len(gp.Input) - 1; i >= 1; i-- {
			if !feedsParam(gp, gp.Input[i].GetName()) {
				break
			}
			raw, err := os.ReadFile(filepath.Join(filepath.Dir(p), "test_data_set_0", fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				break
			}
			tp := &pb.TensorProto{}
			if err := proto.Unmarshal(raw, tp); err != nil {
				t.Fatalf("%s: input %d: %v", p, i, err)
			}
			tp.Name = proto.String(gp.Input[i].GetName())
			gp.Initializer = append(gp.Initializer, tp)
			gp.Input = gp.Input[:i]
		}
		m, err := Import(mp)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		declared := map[string]Shape{}
		for _, o := range m.Graph.Outputs {
			declared[o] = m.Graph.Values[o].Shape.Clone()
		}
		res, err := InferShapes(m, InferOptions{Lenient: true})
		if why, ok := notInferred[filepath.Base(filepath.Dir(p))]; ok {
			t.Logf("%s: not compared: %s", filepath.Base(filepath.Dir(p)), why)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(filepath.Dir(p)), err)
			continue
		}
		if len(res.Skipped) > 0 {
			unknown++
			continue
		}
		for name, want := range declared {
			got := m.Graph.Values[name].Shape
			if want == nil || !want.Static() {
				continue
			}
			checked++
			if !got.Equal(want) {
				t.Errorf("%s: output %s inferred %v, declared %v", filepath.Base(filepath.Dir(p)), name, got, want)
			}
		}
	}
	t.Logf("%d output shapes checked against %d models; %d models use ops outside chanopt's set", checked, len(models), unknown)
	if checked < 300 {
		t.Errorf("only %d output shapes checked", checked)
	}
}

// notInferred lists the conformance models whose shapes chanopt does not infer, and why.
var notInferred = map[string]string{
	"test_identity_opt":      "optional values are not tensors",
	"test_identity_sequence": "sequence values are not tensors",
}

func init() {
	for _, s := range []string{"2d_axis_negative_1", "2d_axis_negative_2", "3d_axis_negative_1_epsilon",
		"3d_axis_negative_2_epsilon", "3d_axis_negative_3_epsilon", "4d_axis_negative_1", "4d_axis_negative_2",
		"4d_axis_negative_3", "4d_axis_negative_4", "default_axis"} {
		notInferred["test_layer_normalization_"+s+"_expanded"] = "the expansion computes a Reshape target " +
			"through Sub/ConstantOfShape on ranks, which only transformer exports do"
	}
}

// feedsParam reports whether a graph input is an argument that exported CNNs hold as a constant.
func feedsParam(gp *pb.GraphProto, name string) bool {
	for _, n := range gp.Node {
		for i, in := range n.Input {
			if in != name || i == 0 {
				continue
			}
			switch n.GetOpType() {
			case "Resize", "Upsample", "Slice", "Reshape", "Expand", "Tile", "Split", "Squeeze", "Unsqueeze",
				"Pad", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "Clip":
				return true
			}
		}
		if n.GetOpType() == "ConstantOfShape" && len(n.Input) > 0 && n.Input[0] == name {
			return true
		}
	}
	return false
}

package ort

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReadProfile reads a profile in ONNX Runtime's format (Chrome trace events): nodes are
// grouped into the runs whose spans hold them, runs come out in order whatever order the file
// lists them in, events other than kernel times are ignored, and a node outside every run is an
// error rather than a silently lost time.
func TestReadProfile(t *testing.T) {
	const events = `[
{"cat":"Session","name":"session_initialization","ts":1,"dur":50,"args":{}},
{"cat":"Node","name":"conv_b1_nchwc_kernel_time","ts":210,"dur":40,"args":{"op_name":"Conv"}},
{"cat":"Node","name":"ReorderInput_kernel_time","ts":202,"dur":7,"args":{"op_name":"ReorderInput"}},
{"cat":"Session","name":"model_run","ts":200,"dur":100,"args":{}},
{"cat":"Node","name":"conv_b1_nchwc_fence_before","ts":105,"dur":0,"args":{"op_name":"Conv"}},
{"cat":"Node","name":"conv_b1_nchwc_kernel_time","ts":110,"dur":30,"args":{"op_name":"Conv"}},
{"cat":"Session","name":"model_run","ts":100,"dur":50,"args":{}}
]`
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(path, []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := readProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	us := time.Microsecond
	want := [][]NodeTime{
		{{Node: "conv_b1_nchwc", Op: "Conv", Dur: 30 * us}},
		{{Node: "conv_b1_nchwc", Op: "Conv", Dur: 40 * us}, {Node: "ReorderInput", Op: "ReorderInput", Dur: 7 * us}},
	}
	if !reflect.DeepEqual(runs, want) {
		t.Errorf("runs %+v, want %+v", runs, want)
	}

	orphan := strings.Replace(events, `"ts":210`, `"ts":400`, 1)
	if err := os.WriteFile(path, []byte(orphan), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readProfile(path); err == nil || !strings.Contains(err.Error(), "outside every run") {
		t.Errorf("a node outside every run: %v", err)
	}
}

package main

import (
	"testing"

	"github.com/chanopt/chanopt/onnx"
)

func TestParseInputShape(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		s    onnx.Shape
		bad  bool
	}{
		{in: "1,3,224,224", s: onnx.ShapeOf(1, 3, 224, 224)},
		{in: "x:2,1,28,28", name: "x", s: onnx.ShapeOf(2, 1, 28, 28)},
		{in: "a:b:1,2", name: "a:b", s: onnx.ShapeOf(1, 2)},
		{in: " 1, 2 ", s: onnx.ShapeOf(1, 2)},
		{in: "1,x,3", bad: true},
		{in: "1,0", bad: true},
		{in: "1,-2", bad: true},
		{in: "x:", bad: true},
		{in: "", bad: true},
	} {
		name, s, err := parseInputShape(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		if err != nil || name != tc.name || !s.Equal(tc.s) {
			t.Errorf("%q: got %q %v %v", tc.in, name, s, err)
		}
	}
}

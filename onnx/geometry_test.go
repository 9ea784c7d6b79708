package onnx

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// The slice cases were checked against ONNX Runtime 1.30 (Slice-13 on a float tensor of 5
// elements); numpy differs on the first one, where it takes nothing.
func TestSliceRange(t *testing.T) {
	const maxI, minI = math.MaxInt64, math.MinInt64
	tests := []struct {
		name                   string
		start, end, step, dim  int64
		first, stop, wantCount int64
		elems                  []int64 // the indices taken
	}{
		{"negative start below -dim, negative step: spec clamps start to 0", -10, -20, -1, 5, 0, -1, 1, []int64{0}},
		{"both below -dim, positive step", -10, -20, 1, 5, 0, 0, 0, nil},
		{"start past the end, negative step", 10, -20, -1, 5, 4, -1, 5, []int64{4, 3, 2, 1, 0}},
		{"reverse from -1", -1, -10, -1, 5, 4, -1, 5, []int64{4, 3, 2, 1, 0}},
		{"step -2", 2, -10, -2, 5, 2, -1, 2, []int64{2, 0}},
		{"start below -dim, positive step", -6, 3, 1, 5, 0, 3, 3, []int64{0, 1, 2}},
		{"start -dim exactly, negative step", -5, -10, -1, 5, 0, -1, 1, []int64{0}},
		{"INT64 max start, INT64 min end, step -1", maxI, minI, -1, 5, 4, -1, 5, []int64{4, 3, 2, 1, 0}},
		{"INT64 min start, INT64 max end, step 2", minI, maxI, 2, 5, 0, 5, 3, []int64{0, 2, 4}},
		{"INT64 max step", 0, maxI, maxI, 5, 0, 5, 1, []int64{0}},
		{"INT64 min step", maxI, minI, minI, 5, 4, -1, 1, []int64{4}},
		{"step -3 from 4 to 0", 4, 0, -3, 5, 4, 0, 2, []int64{4, 1}},
		{"step past the dim", 0, 5, 7, 5, 0, 5, 1, []int64{0}},
		{"empty forward", 3, 2, 1, 5, 3, 2, 0, nil},
		{"empty backward", 1, 3, -1, 5, 1, 3, 0, nil},
		{"end -1 forward", 1, -1, 1, 5, 1, 4, 3, []int64{1, 2, 3}},
		{"empty dim", -3, 10, -1, 0, 0, 0, 0, nil},
	}
	for _, tc := range tests {
		first, stop, count := SliceRange(tc.start, tc.end, tc.step, tc.dim)
		if first != tc.first || stop != tc.stop || count != tc.wantCount {
			t.Errorf("%s: SliceRange(%d, %d, %d, %d) = %d, %d, %d; want %d, %d, %d", tc.name, tc.start, tc.end, tc.step,
				tc.dim, first, stop, count, tc.first, tc.stop, tc.wantCount)
			continue
		}
		var got []int64
		for i := int64(0); i < count; i++ {
			got = append(got, first+i*tc.step)
		}
		if !slices.Equal(got, tc.elems) {
			t.Errorf("%s: takes %v, want %v", tc.name, got, tc.elems)
		}
	}
}

// The output sizes follow the formulas of the ONNX Conv, pool and ConvTranspose docs; the pads of
// SAME_* put the odd unit at the end (UPPER) or the beginning (LOWER).
func TestWindowAxis(t *testing.T) {
	tests := []struct {
		name      string
		w         Window
		transpose bool
		in        []int64
		out, b, e []int64
		err       string
	}{
		{name: "defaults", w: Window{Kernel: []int64{3, 3}}, in: []int64{7, 5}, out: []int64{5, 3}, b: []int64{0, 0}, e: []int64{0, 0}},
		{name: "NOTSET pads, stride 2", w: Window{Kernel: []int64{3}, Strides: []int64{2}, Pads: []int64{1, 1}, AutoPad: "NOTSET"},
			in: []int64{8}, out: []int64{4}, b: []int64{1}, e: []int64{1}},
		{name: "asymmetric pads, dilation 2", w: Window{Kernel: []int64{3}, Dilations: []int64{2}, Pads: []int64{2, 0}},
			in: []int64{6}, out: []int64{4}, b: []int64{2}, e: []int64{0}},
		{name: "VALID ignores pads", w: Window{Kernel: []int64{3}, Strides: []int64{2}, Pads: []int64{5, 5}, AutoPad: "VALID"},
			in: []int64{8}, out: []int64{3}, b: []int64{0}, e: []int64{0}},
		{name: "SAME_UPPER odd total", w: Window{Kernel: []int64{4}, AutoPad: "SAME_UPPER"},
			in: []int64{5}, out: []int64{5}, b: []int64{1}, e: []int64{2}},
		{name: "SAME_LOWER odd total", w: Window{Kernel: []int64{4}, AutoPad: "SAME_LOWER"},
			in: []int64{5}, out: []int64{5}, b: []int64{2}, e: []int64{1}},
		{name: "SAME_UPPER stride 2", w: Window{Kernel: []int64{3}, Strides: []int64{2}, AutoPad: "SAME_UPPER"},
			in: []int64{7}, out: []int64{4}, b: []int64{1}, e: []int64{1}},
		{name: "SAME_LOWER stride 2 dilated", w: Window{Kernel: []int64{3}, Strides: []int64{2}, Dilations: []int64{2}, AutoPad: "SAME_LOWER"},
			in: []int64{6}, out: []int64{3}, b: []int64{2}, e: []int64{1}},
		{name: "SAME kernel smaller than stride needs no pad", w: Window{Kernel: []int64{1}, Strides: []int64{3}, AutoPad: "SAME_UPPER"},
			in: []int64{7}, out: []int64{3}, b: []int64{0}, e: []int64{0}},
		{name: "ceil mode", w: Window{Kernel: []int64{3}, Strides: []int64{2}, CeilMode: true},
			in: []int64{6}, out: []int64{3}, b: []int64{0}, e: []int64{0}},
		{name: "ceil mode drops a window starting in the end pad", w: Window{Kernel: []int64{1}, Strides: []int64{3}, CeilMode: true},
			in: []int64{5}, out: []int64{2}, b: []int64{0}, e: []int64{0}},
		{name: "ceil mode with pads", w: Window{Kernel: []int64{2}, Strides: []int64{2}, Pads: []int64{1, 1}, CeilMode: true},
			in: []int64{4}, out: []int64{3}, b: []int64{1}, e: []int64{1}},
		{name: "ceil mode VALID", w: Window{Kernel: []int64{2}, Strides: []int64{2}, AutoPad: "VALID", CeilMode: true},
			in: []int64{5}, out: []int64{3}, b: []int64{0}, e: []int64{0}},
		{name: "ceil mode SAME is ceil(in/s) anyway", w: Window{Kernel: []int64{3}, Strides: []int64{2}, AutoPad: "SAME_UPPER", CeilMode: true},
			in: []int64{5}, out: []int64{3}, b: []int64{1}, e: []int64{1}},
		{name: "window larger than input", w: Window{Kernel: []int64{5}}, in: []int64{3}, err: "larger than the padded input"},
		{name: "VALID window larger than input", w: Window{Kernel: []int64{5}, AutoPad: "VALID"}, in: []int64{3}, err: "larger"},
		{name: "bad auto_pad", w: Window{Kernel: []int64{1}, AutoPad: "SAME"}, in: []int64{3}, err: "auto_pad"},
		{name: "pads of the wrong length", w: Window{Kernel: []int64{1, 1}, Pads: []int64{1, 1}}, in: []int64{3, 3}, err: "want 4 values"},
		{name: "negative pads", w: Window{Kernel: []int64{1}, Pads: []int64{-1, 0}}, in: []int64{3}, err: "negative"},
		{name: "zero stride", w: Window{Kernel: []int64{1}, Strides: []int64{0}}, in: []int64{3}, err: "positive"},
		{name: "kernel rank", w: Window{Kernel: []int64{1}}, in: []int64{3, 3}, err: "spatial dims"},

		{name: "transpose NOTSET", transpose: true, w: Window{Kernel: []int64{3}, Strides: []int64{2}, Pads: []int64{1, 1}},
			in: []int64{4}, out: []int64{7}, b: []int64{1}, e: []int64{1}},
		{name: "transpose output_padding and dilation", transpose: true,
			w:  Window{Kernel: []int64{3}, Strides: []int64{2}, Dilations: []int64{2}, OutputPadding: []int64{1}},
			in: []int64{3}, out: []int64{10}, b: []int64{0}, e: []int64{0}},
		{name: "transpose VALID ignores pads", transpose: true, w: Window{Kernel: []int64{3}, Pads: []int64{1, 1}, AutoPad: "VALID"},
			in: []int64{4}, out: []int64{6}, b: []int64{0}, e: []int64{0}},
		{name: "transpose SAME_UPPER", transpose: true, w: Window{Kernel: []int64{3}, Strides: []int64{2}, AutoPad: "SAME_UPPER"},
			in: []int64{4}, out: []int64{8}, b: []int64{0}, e: []int64{1}},
		{name: "transpose SAME_LOWER", transpose: true, w: Window{Kernel: []int64{3}, Strides: []int64{2}, AutoPad: "SAME_LOWER"},
			in: []int64{4}, out: []int64{8}, b: []int64{1}, e: []int64{0}},
		// ONNX's test_convtranspose_output_shape: the full output is 9×7, one short of output_shape
		// on each axis, so the end "pad" is -1 (the output grows by a row and a column).
		{name: "transpose output_shape sets the pads", transpose: true,
			w:  Window{Kernel: []int64{3, 3}, Strides: []int64{3, 2}, OutputShape: []int64{10, 8}, Pads: []int64{9, 9, 9, 9}},
			in: []int64{3, 3}, out: []int64{10, 8}, b: []int64{0, 0}, e: []int64{-1, -1}},
		{name: "transpose output_shape smaller than the full output", transpose: true,
			w:  Window{Kernel: []int64{3}, Strides: []int64{2}, OutputShape: []int64{6}},
			in: []int64{3}, out: []int64{6}, b: []int64{0}, e: []int64{1}},
		{name: "transpose output_shape with N and C, SAME_LOWER", transpose: true,
			w:  Window{Kernel: []int64{3}, Strides: []int64{2}, OutputShape: []int64{1, 2, 6}, AutoPad: "SAME_LOWER"},
			in: []int64{3}, out: []int64{6}, b: []int64{1}, e: []int64{0}},
		{name: "transpose pads larger than the output", transpose: true, w: Window{Kernel: []int64{1}, Pads: []int64{2, 2}},
			in: []int64{2}, err: "negative"},
	}
	for _, tc := range tests {
		output := tc.w.Output
		if tc.transpose {
			output = tc.w.TransposedOutput
		}
		out, b, e, err := output(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(out, tc.out) || !slices.Equal(b, tc.b) || !slices.Equal(e, tc.e) {
			t.Errorf("%s: out %v pads %v+%v, want %v pads %v+%v", tc.name, out, b, e, tc.out, tc.b, tc.e)
		}
		if tc.transpose {
			continue
		}
		// Every output position's window must overlap the input, and the pads must be what the
		// windows reach past the input on each side.
		for i := range tc.in {
			s, ext := tc.w.Stride(i), tc.w.Extent(i)
			last := (out[i]-1)*s - b[i]
			if last >= tc.in[i] {
				t.Errorf("%s: axis %d: the last window starts at %d, past the input of %d", tc.name, i, last, tc.in[i])
			}
			if reach := last + ext - tc.in[i]; !tc.w.CeilMode && tc.w.AutoPad != "" && tc.w.AutoPad != "NOTSET" && reach > e[i] {
				t.Errorf("%s: axis %d: the last window reaches %d past the input, the end pad is %d", tc.name, i, reach, e[i])
			}
		}
	}
}

func TestNodeWindow(t *testing.T) {
	n := &Node{OpType: "MaxPool", Attrs: map[string]*Attr{}}
	n.SetInts("kernel_shape", []int64{2, 2})
	n.SetInts("strides", []int64{2, 2})
	n.SetInts("pads", []int64{0, 0, 1, 1})
	n.Attrs["auto_pad"] = &Attr{Kind: AttrString, S: "NOTSET"}
	n.Attrs["ceil_mode"] = &Attr{Kind: AttrInt, I: 1}
	w := NodeWindow(n, []int64{9, 9})
	if !slices.Equal(w.Kernel, []int64{2, 2}) || !slices.Equal(w.Strides, []int64{2, 2}) || !slices.Equal(w.Pads, []int64{0, 0, 1, 1}) ||
		w.AutoPad != "NOTSET" || !w.CeilMode {
		t.Errorf("NodeWindow read %+v", w)
	}
	if w := NodeWindow(&Node{OpType: "Conv"}, []int64{3, 3}); !slices.Equal(w.Kernel, []int64{3, 3}) || w.AutoPad != "NOTSET" {
		t.Errorf("NodeWindow without attributes: %+v, want the weight's kernel and NOTSET", w)
	}
}

// FuzzSliceRange checks SliceRange's closed form against walking the clamped range one step at a
// time, for any int64 start, end and step, on small dims: same count, every index inside the dim.
func FuzzSliceRange(f *testing.F) {
	for _, s := range [][4]int64{{-10, -20, -1, 5}, {0, math.MaxInt64, math.MaxInt64, 5}, {math.MaxInt64, math.MinInt64, math.MinInt64, 7},
		{3, 1, -2, 4}, {0, 0, 1, 0}, {-1, -100, -3, 64}} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, start, end, step, dim int64) {
		if step == 0 || dim < 0 || dim > 64 {
			return
		}
		first, _, count := SliceRange(start, end, step, dim)
		// The spec's clamping, then a walk.
		s, e := start, end
		if s < 0 {
			s += dim
		}
		if e < 0 {
			e += dim
		}
		lo, hi := int64(0), dim
		if step < 0 {
			lo, hi = -1, dim-1
		}
		s, e = max(min(s, hi), max(lo, 0)), max(min(e, hi), lo)
		var walked int64
		for i := s; dim > 0 && ((step > 0 && i < e) || (step < 0 && i > e)); {
			if i < 0 || i >= dim {
				t.Fatalf("SliceRange(%d, %d, %d, %d): walk reaches index %d", start, end, step, dim, i)
			}
			walked++
			next := i + step
			if (step > 0) != (next > i) { // wrapped around int64
				break
			}
			i = next
		}
		if walked != count || (count > 0 && first != s) {
			t.Fatalf("SliceRange(%d, %d, %d, %d) = first %d, count %d; walking gives first %d, count %d", start, end, step, dim, first, count, s, walked)
		}
		if last := first + (count-1)*step; count > 0 && (last < 0 || last >= dim) {
			t.Fatalf("SliceRange(%d, %d, %d, %d): last index %d outside the dim", start, end, step, dim, last)
		}
	})
}

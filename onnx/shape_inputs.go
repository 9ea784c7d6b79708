package onnx

import (
	"fmt"
	"sort"
)

// This file fixes the input shapes inference starts from.

// BatchOne returns input shapes with a symbolic first dim set to 1 and everything else as declared;
// it fails naming the input when any other dim is not static.
func BatchOne(g *Graph, given map[string]Shape) (map[string]Shape, error) {
	out := map[string]Shape{}
	names := append([]string(nil), g.Inputs...)
	sort.Strings(names)
	for _, name := range names {
		if s, ok := given[name]; ok {
			out[name] = s
			continue
		}
		v := g.Values[name]
		if v == nil || v.Shape == nil {
			return nil, fmt.Errorf("input %q has no declared shape; give --input-shape %s:D0,D1,..", name, name)
		}
		s := v.Shape.Clone()
		if len(s) > 0 && !s[0].Known() {
			s[0] = D(1)
		}
		if !s.Static() {
			return nil, fmt.Errorf("input %q has symbolic dims %v; give --input-shape %s:D0,D1,..", name, v.Shape, name)
		}
		out[name] = s
	}
	return out, nil
}

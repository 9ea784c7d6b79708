package onnx

import "fmt"

// NodeCost is the cost of one node.
type NodeCost struct {
	Node   string // the node's label
	Op     string
	MACs   int64
	Params int64 // floating-point weight elements the node reads (shared ones counted at each reader)
}

// Cost is the size and work of a model at one input shape.
type Cost struct {
	Params int64 // elements of all floating-point initializers and constants, each counted once
	MACs   int64 // multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul
	Nodes  []NodeCost
}

// CountParams counts the elements of every floating-point constant of the model, including the
// float arguments that import lifted into attributes (Clip bounds, Resize scales), each name once.
func CountParams(m *Model) int64 {
	g := m.Graph
	var total int64
	for _, t := range g.Inits {
		if t.Type.IsFloat() {
			total += t.NumElements()
		}
	}
	lifted := map[string]int64{}
	for _, n := range g.Nodes {
		for _, name := range n.ParamNames {
			if _, isInit := g.Inits[name]; isInit {
				continue
			}
			if c, ok := g.LiftedFloats[name]; ok {
				lifted[name] = c
			}
		}
		if n.OpType == "Constant" {
			if a, ok := n.Attrs["value"]; ok && a.T != nil && a.T.Type.IsFloat() {
				total += a.T.NumElements()
			}
			if a, ok := n.Attrs["sparse_value"]; ok && a.Raw != nil && a.Raw.SparseTensor != nil {
				if v := a.Raw.SparseTensor.GetValues(); DataType(v.GetDataType()).IsFloat() {
					n := int64(1)
					for _, d := range v.Dims {
						n *= d
					}
					total += n
				}
			}
		}
	}
	for _, c := range lifted {
		total += c
	}
	return total
}

// MeasureCost computes params and MACs; shapes must have been inferred at a static input shape.
func MeasureCost(m *Model) (Cost, error) {
	g := m.Graph
	c := Cost{Params: CountParams(m)}
	for _, n := range g.Nodes {
		nc := NodeCost{Node: n.Label(), Op: n.OpType, Params: NodeParams(g, n)}
		macs, err := nodeMACs(g, n)
		if err != nil {
			return c, fmt.Errorf("MACs of node %s (%s): %w", n.Label(), n.OpType, err)
		}
		nc.MACs = macs
		c.MACs += macs
		c.Nodes = append(c.Nodes, nc)
	}
	return c, nil
}

// CostAt infers shapes at the given input shapes (see BatchOne) and measures the cost there. The
// model is left untouched: inference writes a copy of its value table.
func CostAt(m *Model, inputs map[string]Shape) (Cost, error) {
	tmp, err := InferredCopy(m, inputs)
	if err != nil {
		return Cost{}, err
	}
	return MeasureCost(tmp)
}

// NodeMACsAt is each node's MACs at the given input shapes, keyed by m's own nodes; m is left
// untouched as in CostAt.
func NodeMACsAt(m *Model, inputs map[string]Shape) (map[*Node]int64, error) {
	tmp, err := InferredCopy(m, inputs)
	if err != nil {
		return nil, err
	}
	out := make(map[*Node]int64, len(m.Graph.Nodes))
	for _, n := range m.Graph.Nodes {
		v, err := nodeMACs(tmp.Graph, n)
		if err != nil {
			return nil, fmt.Errorf("MACs of node %s (%s): %w", n.Label(), n.OpType, err)
		}
		out[n] = v
	}
	return out, nil
}

// InferredCopy shares m's nodes and tensors but not its value table, and infers shapes into the
// copy's table.
func InferredCopy(m *Model, inputs map[string]Shape) (*Model, error) {
	g := *m.Graph
	g.Values = make(map[string]*Value, len(m.Graph.Values))
	for k, v := range m.Graph.Values {
		c := *v
		c.Shape = v.Shape.Clone()
		g.Values[k] = &c
	}
	c := *m
	c.Graph = &g
	if _, err := InferShapes(&c, InferOptions{Inputs: inputs}); err != nil {
		return nil, err
	}
	return &c, nil
}

// NodeParams counts the floating-point constant elements a node reads (a shared constant counts
// at each reader).
func NodeParams(g *Graph, n *Node) int64 {
	var p int64
	for _, in := range n.Inputs {
		if t, ok := g.Inits[in]; ok && t.Type.IsFloat() {
			p += t.NumElements()
		}
	}
	return p
}

// staticShapes returns the inferred shapes of the named values, failing on any not fully known.
func staticShapes(g *Graph, names ...string) ([]Shape, error) {
	out := make([]Shape, len(names))
	for i, name := range names {
		v, ok := g.Values[name]
		if !ok || !v.Shape.Static() {
			s := Shape(nil)
			if ok {
				s = v.Shape
			}
			return nil, fmt.Errorf("shape of %q is not known (%v)", name, s)
		}
		out[i] = v.Shape
	}
	return out, nil
}

// NodeMACs is the multiply-accumulate count of one node at the shapes inferred into g: the one
// place the per-node cost is computed (MeasureCost, CostAt, NodeMACsAt and the CLI all call it).
func NodeMACs(g *Graph, n *Node) (int64, error) { return nodeMACs(g, n) }

func nodeMACs(g *Graph, n *Node) (int64, error) {
	if n.Domain != "" {
		return 0, nil
	}
	switch n.OpType {
	case "Conv":
		// out elements × (C_in/group) × kernel elements; W is C_out × C_in/group × k...
		s, err := staticShapes(g, n.Outputs[0], n.Input(1))
		if err != nil {
			return 0, err
		}
		return s[0].NumElements() * s[1][1:].NumElements(), nil
	case "ConvTranspose":
		// every input element is multiplied into (C_out/group) × kernel outputs; W is C_in × C_out/group × k...
		s, err := staticShapes(g, n.Input(0), n.Input(1))
		if err != nil {
			return 0, err
		}
		return s[0].NumElements() * s[1][1:].NumElements(), nil
	case "Gemm":
		// out elements × K, K being A's columns (its rows with transA)
		s, err := staticShapes(g, n.Input(0), n.Outputs[0])
		if err != nil {
			return 0, err
		}
		k := s[0][1].Size
		if n.Int("transA", 0) != 0 {
			k = s[0][0].Size
		}
		return s[1].NumElements() * k, nil
	case "MatMul":
		// out elements × A's last dim
		s, err := staticShapes(g, n.Input(0), n.Outputs[0])
		if err != nil {
			return 0, err
		}
		a := s[0]
		return s[1].NumElements() * a[len(a)-1].Size, nil
	}
	return 0, nil
}

package optimizer

import (
	"fmt"

	"github.com/chanopt/chanopt/onnx"
)

// BudgetKind says which cost a budget limits.
type BudgetKind string

// The budget kinds of `chanopt shrink`.
const (
	MACs    BudgetKind = "macs"
	Params  BudgetKind = "params"
	Latency BudgetKind = "latency"
)

// Budget is the fraction of the original cost the slim model may have.
type Budget struct {
	Kind  BudgetKind
	Ratio float64
}

func (b Budget) String() string { return fmt.Sprintf("%s ≤ %.3g of the original", b.Kind, b.Ratio) }

// Validate checks the ratio is a usable fraction.
func (b Budget) Validate() error {
	if !(b.Ratio > 0 && b.Ratio <= 1) {
		return fmt.Errorf("budget %s=%v: the fraction to keep must be in (0, 1]", b.Kind, b.Ratio)
	}
	return nil
}

// Costs are the sizes of one model the budgets compare.
type Costs struct {
	Params int64 `json:"params"`
	MACs   int64 `json:"macs"`
}

// Measure computes params and MACs at the given input shapes (batch 1 where symbolic). The model
// itself is left untouched (see onnx.CostAt).
func Measure(m *onnx.Model, inputs map[string]onnx.Shape) (Costs, error) {
	c, err := onnx.CostAt(m, inputs)
	if err != nil {
		return Costs{}, err
	}
	return Costs{Params: c.Params, MACs: c.MACs}, nil
}

// Of returns the cost a budget kind limits.
func (c Costs) Of(k BudgetKind) float64 {
	if k == Params {
		return float64(c.Params)
	}
	return float64(c.MACs)
}

// Package optimizer decides how wide each channel group of a trained network should be and repairs
// the network after it is cut.
//
// It owns the CONet low-rank metrics of each layer (EVBMF rank, knowledge gain KG, mapping condition
// MC and their combination QC, see LayerMetricsOf), channel importance, budgets (MACs, parameters,
// measured latency), the annealer that searches widths under a budget, the accuracy-first search
// over budgets when none is given (Options.MaxDrop, target.go), and distillation (BN
// recalibration, least-squares reconstruction, KD fine-tuning, and optionally CONetV2's adaptive
// sizing during the fine-tuning: Options.Adapt, adapt.go). What a model's outputs are (class
// logits, probabilities, dense maps, embeddings: outputs.go) decides, in one place, the loss each
// is distilled and judged by and the agreement figures reported for it (outputloss.go).
//
// It works on the IR of package onnx and never parses flags or prints: the CLI does both.
package optimizer

// Package linalg owns the dense float64 numerics that chanopt's layer metrics need and gonum does not
// provide fast enough: a cache-blocked product C += A·Bᵀ with an AVX2 kernel (GemmNT), the
// eigenvalues of a symmetric matrix by a blocked tridiagonal reduction (SymEigenvalues), singular
// values through the Gram matrix of a matrix's smaller side (GramSingularValues), and a bounded 1-D
// minimiser (MinimizeBounded).
//
// Its functions take plain slices or gonum matrices and return numbers. It must not know about
// models, layers, channels or pruning: package optimizer builds the metrics on top of it.
package linalg

// Package linalg owns the dense float64 numerics that chanopt's metrics and repairs use, on top of
// gonum where gonum is fast enough and in its place where it is not: a cache-blocked product
// C += A·Bᵀ with an AVX2 kernel (GemmNT), the eigenvalues of a symmetric matrix by a blocked
// tridiagonal reduction (SymEigenvalues), singular values through the Gram matrix of a matrix's
// smaller side (GramSingularValues) or by SVD, a bounded 1-D minimiser (MinimizeBounded), and
// least squares with a ridge from normal equations accumulated a row at a time (NormalEquations).
//
// Its functions take plain slices or gonum matrices and return numbers. It must not know about
// models, layers, channels or pruning: package optimizer builds the metrics and the refit on it.
package linalg

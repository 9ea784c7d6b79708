//go:build !unix

package main

// lockDirs does nothing where advisory directory locks are not available: each rename is still
// atomic, but two concurrent runs writing the same outputs may interleave them.
func lockDirs([]string) func() { return func() {} }

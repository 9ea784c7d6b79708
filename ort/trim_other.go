//go:build !linux

package ort

// returnFreedMemory does nothing: only glibc's malloc keeps freed memory that a call returns.
func returnFreedMemory() {}

//go:build unix

package main

import (
	"os"
	"syscall"
)

// lockDirs takes an exclusive advisory lock on each directory (in the order given) and returns
// the function that releases them. Locks are best effort: a directory that cannot be locked is
// skipped, as the renames are atomic one by one anyway.
func lockDirs(dirs []string) func() {
	var held []*os.File
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			continue
		}
		held = append(held, f)
	}
	return func() {
		for _, f := range held {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		}
	}
}

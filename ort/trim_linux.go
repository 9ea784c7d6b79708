//go:build linux

package ort

import (
	"sync"

	"github.com/ebitengine/purego"
)

// mallocTrim is glibc's malloc_trim, nil where the C library has none (musl) or cannot be opened.
var mallocTrim struct {
	once sync.Once
	fn   func(pad uintptr) int32
}

// returnFreedMemory hands the C heap's free pages back to the system. What a closed session held
// goes back to malloc, which keeps it: four ResNet-50 sessions opened, run and closed left the
// process 680 MiB larger until malloc_trim (805 MiB resident, then 145), and a shrink times the
// original and each grid's result in sessions before its repair, which then ran with that memory
// still resident.
func returnFreedMemory() {
	mallocTrim.once.Do(func() {
		h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			return
		}
		sym, err := purego.Dlsym(h, "malloc_trim")
		if err != nil {
			return
		}
		purego.RegisterFunc(&mallocTrim.fn, sym)
	})
	if mallocTrim.fn != nil {
		mallocTrim.fn(0)
	}
}

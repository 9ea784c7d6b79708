package onnx

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the given range of f to disk without waiting
// for it (sync_file_range SYNC_FILE_RANGE_WRITE). It promises nothing about durability: the fsync
// that writeAtomic does before its rename still does that. It only lets the disk work while the
// rest of the file is being written, instead of all of it at the fsync. Errors are ignored: the
// fsync reports real ones.
func startWriteback(f *os.File, off, n int64) {
	if c, err := f.SyscallConn(); err == nil {
		c.Control(func(fd uintptr) {
			unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
		})
	}
}

// holdReplaced opens the regular file at path, if there is one, so that when writeAtomic's rename
// replaces it, the kernel does not free it inside the rename: freeing a large file's page cache
// and blocks costs about as much as writing it (some 30 ms for 100 MB here). release, called once
// the new file is in place and durable, closes the file on another goroutine, where that work
// then happens while the caller goes on. Nothing about the new file depends on it: the old one
// is already unlinked, only its space is freed later (at the latest when the process exits).
func holdReplaced(path string) (release func()) {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() < 1<<20 {
		return func() {} // small files cost nothing to free
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return func() {}
	}
	return func() { go f.Close() }
}

// preallocate reserves n bytes of disk for f, which is about to be written from its start, in
// one go (fallocate, keeping the file's size): the file system then does not reserve and map the
// blocks one page at a time as the writes come in. A hint: errors (file systems without
// fallocate) are ignored.
func preallocate(f *os.File, n int64) {
	if c, err := f.SyscallConn(); err == nil {
		c.Control(func(fd uintptr) {
			unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, 0, n)
		})
	}
}

// memoryAvailable returns about how many bytes this process could still allocate: MemAvailable in
// /proc/meminfo, or the cgroup v2 memory.max when that is lower (a container's limit, which
// MemAvailable does not show). 0 when neither can be read.
func memoryAvailable() int64 {
	avail := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					avail = kb << 10
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		// "max" (no limit) does not parse.
		if limit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && limit > 0 && (avail == 0 || limit < avail) {
			avail = limit
		}
	}
	return avail
}

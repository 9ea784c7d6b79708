package onnx

// mmap_linux.go: the large initializer data of a model file viewed in a private mapping of the file
// instead of copied out of it (see readAside). Reading 100 MB into fresh memory costs a copy and a
// page fault per 4 KiB; mapping the file and populating the page tables in one call costs neither,
// and WriteFile then writes the unchanged data straight from the page cache.
//
// A mapping of a file is only as stable as the file, so a mapping is made only under a read lease
// (fcntl F_SETLEASE F_RDLCK): the kernel grants it only to the file's owner (or with CAP_LEASE),
// only while no one has the file open for writing, and it then holds up any other open for writing
// or truncate of the file until the lease is released, signalling this process (SIGIO). On that
// signal the mapping is detached: its contents are copied to anonymous memory, which is moved over
// the mapping in one step (mremap), and only then is the lease released and the writer goes on.
// Without the lease, a program rewriting the model while chanopt runs would truncate it under the
// mapping, and the next read of a weight would kill the process with SIGBUS. Where no lease can be
// had (another user's file, a file system without leases, a file being written) the data is read
// into memory as before.
//
// MAP_PRIVATE with write permission: a tensor changed in place gets a private copy of the pages it
// writes (copy on write), which never reach the file. One thing the detach cannot promise: a write
// to a weight while its page is being copied (the few milliseconds after another process opened
// the file for writing) can be lost.
//
// Lifetime: a mapping is kept until the process exits. Go's collector cannot see a slice into
// memory it did not allocate, so nothing tells when the last view of a mapping is gone: releasing it
// when the TensorProtos that own it are collected was tried, and unmapped the data under a Save
// still writing it (the caller's last reference to the model had died inside Save), and the same
// would happen to any float slice a computation holds after its last use of the model. What a kept
// mapping costs: its page tables (about 0.2% of the file), one open file and its lease, the
// file's disk blocks if it is deleted or replaced meanwhile (its clean pages are page cache, which
// the kernel reclaims as it needs), and the pages tensors wrote in place. For a command that loads
// a few models that is nothing; for a long-running program mapCap bounds it: past it, data is read
// into memory as before (and collected as usual).

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapMin is the least data read aside for which readModel maps the file: below it a copy costs
// less than the mapping's system calls. A variable for tests.
var mapMin int64 = 1 << 20

// mapCap bounds what the process keeps mapped (see Lifetime above): the bytes of all mappings and
// their number (each holds a file descriptor).
var mapCap = struct {
	bytes int64
	maps  int
}{4 << 30, 256}

// fileMap is one private mapping of a model file.
type fileMap struct {
	data []byte
	f    *os.File // holds the read lease until detached; nil after
}

// leases is every mapping still backed by its file; the SIGIO watcher looks through it. mapped and
// count are what all mappings made so far take (detached ones too), against mapCap.
var leases struct {
	sync.Mutex
	maps   map[*fileMap]bool
	watch  sync.Once
	mapped int64
	count  int
}

// mapFile maps the size bytes of f (a regular file that readModel parsed) under a read lease, and
// populates the page tables. Any failure means: read the data instead.
func mapFile(f *os.File, size int64) (*fileMap, error) {
	if size <= 0 || size > int64(^uint(0)>>1) {
		return nil, errors.New("size")
	}
	leases.Lock()
	full := leases.mapped+size > mapCap.bytes || leases.count >= mapCap.maps
	leases.Unlock()
	if full {
		return nil, errors.New("mapCap reached")
	}
	leases.watch.Do(watchLeases)
	// A descriptor of its own for the lease (the same open file, so the same contents the caller
	// parsed): the caller closes f.
	var fd int
	var err error
	if c, cerr := f.SyscallConn(); cerr != nil {
		return nil, cerr
	} else if cerr := c.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	lf := os.NewFile(uintptr(fd), f.Name())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		lf.Close()
		return nil, err
	}
	// The file cannot change from here on; it must still be what the caller parsed.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != size {
		lf.Close()
		return nil, errors.New("the file changed")
	}
	p, err := unix.MmapPtr(fd, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		lf.Close()
		return nil, err
	}
	m := &fileMap{data: unsafe.Slice((*byte)(p), size), f: lf}
	// One call instead of a page fault per 4 KiB at first touch (a write(2) from an unpopulated
	// mapping is slower still: its faults come one by one from inside the kernel). Read-populate:
	// pages stay shared with the page cache until written. Kernels before 5.14 lack it.
	if err := unix.Madvise(m.data, unix.MADV_POPULATE_READ); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			m.drop() // an I/O error, say: reading reports it properly
			return nil, err
		}
		unix.Madvise(m.data, unix.MADV_WILLNEED)
	}
	leases.Lock()
	if leases.maps == nil {
		leases.maps = map[*fileMap]bool{}
	}
	leases.maps[m] = true
	leases.mapped += size
	leases.count++
	leases.Unlock()
	checkLeases() // a break signalled before m was listed
	return m, nil
}

// bytes returns the mapped bytes [off, off+n), with capacity n.
func (m *fileMap) bytes(off, n int64) []byte { return m.data[off : off+n : off+n] }

// unused gives up m when the model it was made for failed to load: nothing can view it yet.
func (m *fileMap) unused() {
	leases.Lock()
	defer leases.Unlock() // a detach of m cannot run meanwhile
	if leases.maps[m] {
		delete(leases.maps, m)
		leases.mapped -= int64(len(m.data))
		leases.count--
		m.drop()
	}
}

// drop unmaps m and closes its file, when setting it up failed.
func (m *fileMap) drop() {
	unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(m.data)), uintptr(len(m.data)))
	if m.f != nil {
		m.f.Close()
	}
}

// watchLeases runs checkLeases on every SIGIO, the signal a lease break sends.
func watchLeases() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGIO)
	go func() {
		for range ch {
			checkLeases()
		}
	}()
}

// checkLeases detaches every mapping whose lease another process is waiting for (or that the
// kernel has already revoked). SIGIO does not say which file it is about, and other uses of SIGIO
// can wake it too; both are fine.
func checkLeases() {
	leases.Lock()
	defer leases.Unlock()
	for m := range leases.maps {
		t, err := unix.FcntlInt(m.f.Fd(), unix.F_GETLEASE, 0)
		if err == nil && t == unix.F_RDLCK {
			continue
		}
		m.detach()
		delete(leases.maps, m)
	}
}

// detach moves m's contents to anonymous memory at the same addresses, then releases the lease.
// If there is no memory for the copy the lease is released all the same: holding it would only
// keep the other process waiting until the kernel revokes it (fs.lease-break-time).
func (m *fileMap) detach() {
	n := uintptr(len(m.data))
	if p, err := unix.MmapPtr(-1, 0, nil, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		copy(unsafe.Slice((*byte)(p), n), m.data)
		// mremap replaces the old mapping in one step: a reader sees the file's pages or their
		// copy, never a hole.
		dst := uintptr(unsafe.Pointer(unsafe.SliceData(m.data)))
		if _, _, errno := unix.Syscall6(unix.SYS_MREMAP, uintptr(p), n, n, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, dst, 0); errno != 0 {
			unix.MunmapPtr(p, n)
		}
	}
	m.f.Close()
	m.f = nil
}

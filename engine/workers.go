package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// task is work split into count independent items; do runs item i on worker w (0..threads-1),
// which indexes the worker's scratch memory.
type task interface {
	do(w, i int)
}

// workers is a fixed set of goroutines that run the items of one task at a time together with
// the calling goroutine. Handing out a task allocates nothing.
//
// Helpers join a task while it is open; the caller, once it has taken every item it could,
// closes the task and waits only for the helpers that joined. A helper the OS has not scheduled
// in time therefore never delays a run: the caller does its share. Between tasks a helper spins
// for a short while before parking, so the steps of one run hand work over without wake-ups.
type workers struct {
	n     int // goroutines including the caller
	wake  []chan struct{}
	sleep []atomic.Bool // helper i is parked (or about to park) on wake[i]
	cur   task
	count int
	next  atomic.Int64
	// state packs the current task's epoch (bits 33 and up), whether it is closed to joiners
	// (bit 32) and how many helpers are working on it (bits 0-31).
	state atomic.Uint64
	quit  atomic.Bool
	once  sync.Once
	// failure holds the first panic of a helper during run; run re-panics with it on the
	// caller's goroutine, where the Program turns it into an error.
	failure atomic.Pointer[any]
}

const (
	closedBit  = 1 << 32
	epochShift = 33
	activeMask = closedBit - 1
	// spinChecks is how many times an idle helper polls for the next task before parking.
	spinChecks = 2000
)

func newWorkers(n int) *workers {
	if n < 1 {
		n = 1
	}
	return &workers{n: n}
}

func (p *workers) start() {
	p.wake = make([]chan struct{}, p.n-1)
	p.sleep = make([]atomic.Bool, p.n-1)
	for i := range p.wake {
		p.wake[i] = make(chan struct{}, 1)
		go p.loop(i, p.wake[i])
	}
}

func (p *workers) epoch() uint64 { return p.state.Load() >> epochShift }

func (p *workers) loop(i int, wake chan struct{}) {
	seen := p.epoch()
	for {
		e := p.epoch()
		for spin := 0; e == seen && spin < spinChecks; spin++ {
			if spin%64 == 63 {
				runtime.Gosched()
			}
			e = p.epoch()
		}
		for e == seen {
			p.sleep[i].Store(true)
			if e = p.epoch(); e != seen {
				p.sleep[i].Store(false)
				break
			}
			if _, ok := <-wake; !ok {
				return
			}
			e = p.epoch() // a stale token may wake us without a new task: loop
		}
		if p.quit.Load() {
			return
		}
		seen = e
		if p.join(e) {
			p.safeDrain(i + 1)
			p.state.Add(^uint64(0)) // leave: active - 1
		}
	}
}

// join registers a helper on task e unless it is already closed (or over).
func (p *workers) join(e uint64) bool {
	for {
		s := p.state.Load()
		if s>>epochShift != e || s&closedBit != 0 {
			return false
		}
		if p.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

func (p *workers) safeDrain(w int) {
	defer func() {
		if r := recover(); r != nil {
			saved := new(any) // allocated only on a panic
			*saved = r
			p.failure.CompareAndSwap(nil, saved)
			p.next.Store(int64(p.count)) // stop handing out items
		}
	}()
	p.drain(w)
}

func (p *workers) drain(w int) {
	for {
		i := int(p.next.Add(1) - 1)
		if i >= p.count {
			return
		}
		p.cur.do(w, i)
	}
}

// run executes t's count items across the workers and returns when all are done. With one item,
// or one worker, it runs on the caller alone.
func (p *workers) run(count int, t task) {
	if count <= 0 {
		return
	}
	if p.n == 1 || count == 1 {
		for i := 0; i < count; i++ {
			t.do(0, i)
		}
		return
	}
	p.once.Do(p.start)
	p.cur, p.count = t, count
	p.next.Store(0)
	e := p.epoch() + 1
	p.state.Store(e << epochShift) // open, nobody joined yet
	for i := range p.wake {
		if p.sleep[i].CompareAndSwap(true, false) {
			select {
			case p.wake[i] <- struct{}{}:
			default: // a token is already waiting
			}
		}
	}
	p.safeDrain(0)
	// close to joiners, then wait for the helpers still on an item
	for {
		s := p.state.Load()
		if p.state.CompareAndSwap(s, s|closedBit) {
			break
		}
	}
	for spin := 0; p.state.Load()&activeMask != 0; spin++ {
		if spin%64 == 63 {
			runtime.Gosched()
		}
	}
	p.cur = nil
	if r := p.failure.Swap(nil); r != nil {
		panic(*r)
	}
}

// close stops the goroutines; the workers must not be used afterwards.
func (p *workers) close() {
	if p.wake == nil {
		return
	}
	p.quit.Store(true)
	p.state.Add(1 << epochShift)
	for _, c := range p.wake {
		close(c)
	}
	p.wake = nil
}

// split divides n items into at most parts contiguous chunks and returns chunk i's range.
func split(n, parts, i int) (lo, hi int) {
	return i * n / parts, (i + 1) * n / parts
}

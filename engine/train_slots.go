package engine

import (
	"math"
	"sort"
)

// bindGradSlots gives the gradient slots of a training plan their storage and makes the
// gradient tensors (pl.grads) over it. A parameter's slot is its Grad. With share, slots whose
// lifetimes in the backward do not overlap share storage, as the forward plan's buffers do: an
// activation's gradient is written by the backward of its last reader and read for the last time
// by that of its producer, so few are live at once, and one buffer each kept as much memory as
// the activations themselves (ResNet-50 halved, 224×224, batch 4: about 420 MB). Without share
// every slot has its own buffer: BackwardFrom seeding an intermediate value needs that, since
// the seed must survive the steps after it. Storage is bound again (without sharing) when that
// happens on a shared plan; the gradients, and the sums into them, are the same either way.
func (t *Trainer) bindGradSlots(pl *tplan, share bool) {
	n := len(pl.steps)
	for i := range pl.slots {
		pl.slots[i].first, pl.slots[i].last = math.MaxInt, -1
	}
	touch := func(v, step int) {
		if v < 0 || pl.slotOf[v] < 0 {
			return
		}
		sl := &pl.slots[pl.slotOf[v]]
		sl.first, sl.last = min(sl.first, step), max(sl.last, step)
	}
	for i, s := range pl.steps {
		tn := s.n
		if tn.grad == nil {
			continue
		}
		for j, v := range tn.in {
			if tn.diff[j] {
				touch(v, i)
			}
		}
		for _, v := range tn.out {
			touch(v, i)
		}
	}
	for _, o := range t.g.outIDs {
		touch(o, n)
	}
	for _, in := range t.g.inIDs {
		touch(in, -1)
	}
	// Slots in the order the backward meets them (highest last first); each takes a free
	// buffer (one whose slot's first step is past this slot's last), the smallest that fits or
	// else the largest, grown to fit.
	order := make([]int, 0, len(pl.slots))
	for i, sl := range pl.slots {
		if !sl.param {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return pl.slots[order[a]].last > pl.slots[order[b]].last })
	type buffer struct{ size, until int }
	var bufs []buffer
	bufOf := make([]int, len(pl.slots))
	for _, i := range order {
		sl := &pl.slots[i]
		best := -1
		if share && sl.last >= 0 {
			for b, buf := range bufs {
				if buf.until <= sl.last {
					continue // its slot is still live
				}
				if best < 0 {
					best = b
					continue
				}
				bb := bufs[best]
				switch {
				case buf.size >= sl.size && (bb.size < sl.size || buf.size < bb.size):
					best = b
				case bb.size < sl.size && buf.size > bb.size:
					best = b
				}
			}
		}
		if best < 0 {
			bufs = append(bufs, buffer{})
			best = len(bufs) - 1
		}
		bufs[best].size = max(bufs[best].size, sl.size)
		bufs[best].until = min(sl.first, sl.last) // a slot no step touches frees its buffer at once
		if !share || sl.last < 0 {
			bufs[best].until = math.MinInt // never shared
		}
		bufOf[i] = best
	}
	store := make([][]float32, len(bufs))
	for b, buf := range bufs {
		store[b] = newFloats(buf.size)
	}
	for _, i := range order {
		sl := &pl.slots[i]
		old := sl.buf
		sl.buf = store[bufOf[i]][:sl.size]
		if sl.set && old != nil {
			copy(sl.buf, old) // bound again while a gradient is being seeded
		}
	}
	if pl.grads == nil {
		pl.grads = make([]*Tensor, len(pl.slotOf))
	}
	for v, s := range pl.slotOf {
		if s < 0 {
			continue
		}
		data := pl.slots[s].buf[:pl.vals[v].Len()]
		if g := pl.grads[v]; g != nil {
			g.Data = data // the backward's arguments hold these tensors
		} else {
			pl.grads[v] = &Tensor{Shape: pl.vals[v].Shape, Data: data}
		}
	}
	pl.sharedGrads = share
}

package server

import (
	"math/rand/v2"
	"sync"
	"time"
)

// pingSlots is how many slots a pingWheel turns through in one interval.
const pingSlots = 32

// pingWheel pings every socket of an acceptor once an interval from one
// goroutine, where a runtime timer per socket would cost each idle socket
// its timer (some 200 bytes) for as long as it lasts. A socket sits in one
// of pingSlots slots, and the wheel pings a slot's sockets each
// interval/pingSlots. A new socket goes into a slot half to a whole
// interval ahead, at random, so that sockets opened together (every editor
// reconnecting after a deploy) are not all pinged together for as long as
// they last. The goroutine runs only while the wheel holds sockets.
type pingWheel struct {
	interval time.Duration

	mu      sync.Mutex
	slots   [pingSlots][]*wsSocket
	next    int // the slot the next tick pings
	count   int
	running bool
}

// add puts s on the wheel.
func (w *pingWheel) add(s *wsSocket) {
	w.mu.Lock()
	defer w.mu.Unlock()
	slot := (w.next + pingSlots/2 + rand.N(pingSlots/2)) % pingSlots
	s.pingSlot, s.pingPos = slot, len(w.slots[slot])
	w.slots[slot] = append(w.slots[slot], s)
	w.count++
	if !w.running {
		w.running = true
		go w.run()
	}
}

// remove takes s off the wheel; it is pinged no more.
func (w *pingWheel) remove(s *wsSocket) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.pingPos < 0 {
		return
	}
	slot := w.slots[s.pingSlot]
	last := len(slot) - 1
	slot[s.pingPos] = slot[last]
	slot[s.pingPos].pingPos = s.pingPos
	slot[last] = nil
	w.slots[s.pingSlot] = slot[:last]
	s.pingPos = -1
	w.count--
}

// run pings a slot each tick, each socket on a goroutine of its own (a
// client that stopped reading holds its ping until the write deadline),
// until the wheel is empty.
func (w *pingWheel) run() {
	t := time.NewTicker(max(w.interval/pingSlots, time.Millisecond))
	defer t.Stop()
	var due []*wsSocket
	for range t.C {
		w.mu.Lock()
		if w.count == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		due = append(due[:0], w.slots[w.next]...)
		w.next = (w.next + 1) % pingSlots
		w.mu.Unlock()
		for i, s := range due {
			go s.ping()
			due[i] = nil
		}
	}
}

package fanout

import (
	"sync"
	"time"
)

// Recent keeps, for a short while and up to a bound in count, the value
// made for each key, so that callers asking for one key at about the same
// time make it once: the first caller makes it, the others wait for it.
// The oldest entries make room for new ones.
type Recent[K comparable, V any] struct {
	size int
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[K]*recentEntry[V]
	order   []K // keys by age, oldest first; may name removed entries
}

type recentEntry[V any] struct {
	done chan struct{}
	v    V
	ok   bool
	at   time.Time
}

// NewRecent returns a Recent holding up to size values, each for ttl.
func NewRecent[K comparable, V any](size int, ttl time.Duration) *Recent[K, V] {
	return &Recent[K, V]{size: size, ttl: ttl, now: time.Now, entries: make(map[K]*recentEntry[V])}
}

// Do returns the value of k and whether it is good. The first caller of k
// makes it with mk; callers that overlap or follow it within the time to
// live get its result once it is made. A value mk reports as not good is
// not kept: later callers make their own.
func (r *Recent[K, V]) Do(k K, mk func() (V, bool)) (V, bool) {
	r.mu.Lock()
	if e, ok := r.entries[k]; ok && r.now().Sub(e.at) < r.ttl {
		r.mu.Unlock()
		<-e.done
		return e.v, e.ok
	}
	e := &recentEntry[V]{done: make(chan struct{}), at: r.now()}
	r.evict()
	r.entries[k] = e
	r.order = append(r.order, k)
	r.mu.Unlock()

	defer close(e.done) // also when mk panics: nobody waits for ever
	e.v, e.ok = mk()
	if !e.ok {
		r.mu.Lock()
		if r.entries[k] == e {
			delete(r.entries, k)
		}
		r.mu.Unlock()
	}
	return e.v, e.ok
}

// Len returns how many entries are held.
func (r *Recent[K, V]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// evict drops expired entries from the old end, and the oldest ones while
// there is no room for one more. Called with r.mu held.
func (r *Recent[K, V]) evict() {
	now := r.now()
	drop := 0
	for drop < len(r.order) {
		k := r.order[drop]
		e, ok := r.entries[k]
		if ok && now.Sub(e.at) < r.ttl && len(r.entries) < r.size {
			break
		}
		if ok && (now.Sub(e.at) >= r.ttl || len(r.entries) >= r.size) {
			delete(r.entries, k)
		}
		drop++
	}
	if drop > 0 {
		r.order = append(r.order[:0], r.order[drop:]...)
	}
}

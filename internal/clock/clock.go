// Package clock tells the time. Services that decide something by the time
// (when a signed URL expires, when a hold or a rate-limit window ends) take
// a Clock instead of calling time.Now, so that a test can move time forward
// rather than sleep until it passes.
package clock

import (
	"sync"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// System is the machine's clock, what every service uses outside tests.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Or returns c, or System when c is nil, so that a config's zero value
// means the machine's clock.
func Or(c Clock) Clock {
	if c == nil {
		return System{}
	}
	return c
}

// Fake is a Clock that stands still until Advance moves it. It is safe for
// concurrent use, so a test can move the clock of a running server.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a Fake showing now.
func NewFake(now time.Time) *Fake { return &Fake{now: now} }

// Now returns the time the Fake shows.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the Fake forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

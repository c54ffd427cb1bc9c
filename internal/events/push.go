package events

import (
	"context"
	"sync"
	"sync/atomic"
)

// Push lets the consumer of a followed stream (a WebSocket operation) go
// without a goroutine that waits on the stream's channel: the stream calls
// the consumer's notify after each value it puts on the channel, and once
// after closing it, and the consumer takes what it was told of on the
// notifying goroutine. An idle subscription then costs no goroutine at all,
// and an event reaches its socket without a hand-off between goroutines.
//
// A consumer that pushes must take one value per notification and nothing
// else from the channel; one that does not push (SSE, tests) reads the
// channel as it always could.
//
// The consumer also ends the operation itself: it cancels the context it
// gave (with the Push under it) and then calls End, so that what AtEnd was
// asked to run does not need a context.AfterFunc each (a cancel context, a
// callback context and a child map entry for every part of every
// subscription a socket holds for hours).
type Push struct {
	notify  func()
	claimed atomic.Bool

	mu    sync.Mutex
	ends  []func() // nil where stopped
	ended bool
}

type pushKey struct{}

// WithPush returns ctx under which the first stream made by FollowAs calls
// notify as described on Push. notify must not block for long: it runs on
// the stream's goroutine, which delivers the stream's next value after it.
// The caller must call End once ctx has ended.
func WithPush(ctx context.Context, notify func()) (context.Context, *Push) {
	p := &Push{notify: notify}
	return context.WithValue(ctx, pushKey{}, p), p
}

// Claimed reports whether a stream took the push on; if none did, the
// consumer must wait on the channel itself.
func (p *Push) Claimed() bool { return p.claimed.Load() }

// claimPush returns the notify of ctx's Push for the first stream that
// asks, and nil for any other and outside a Push.
func claimPush(ctx context.Context) func() {
	p, _ := ctx.Value(pushKey{}).(*Push)
	if p == nil || !p.claimed.CompareAndSwap(false, true) {
		return nil
	}
	return p.notify
}

// End runs, on a goroutine of their own, what AtEnd was given, once: the
// consumer's word that the context it gave has ended.
func (p *Push) End() {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	ends := p.ends
	p.ends = nil
	p.mu.Unlock()
	if len(ends) > 0 {
		go runEnds(ends)
	}
}

func runEnds(ends []func()) {
	for _, f := range ends {
		if f != nil {
			f()
		}
	}
}

// AtEnd has f called, on a goroutine other than the caller's, once ctx
// ends: as context.AfterFunc does, but under a Push at the consumer's End,
// at no cost beyond a slice entry. stop keeps f from being called and
// reports whether it did.
func AtEnd(ctx context.Context, f func()) (stop func() bool) {
	p, _ := ctx.Value(pushKey{}).(*Push)
	if p == nil {
		return context.AfterFunc(ctx, f)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		go f()
		return func() bool { return false }
	}
	i := len(p.ends)
	p.ends = append(p.ends, f)
	return func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.ended || p.ends[i] == nil {
			return false
		}
		p.ends[i] = nil
		return true
	}
}

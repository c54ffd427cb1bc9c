package events

import (
	"context"
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
type Push struct {
	notify  func()
	claimed atomic.Bool
}

type pushKey struct{}

// WithPush returns ctx under which the first stream made by FollowAs calls
// notify as described on Push. notify must not block for long: it runs on
// the stream's goroutine, which delivers the stream's next value after it.
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

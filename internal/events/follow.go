package events

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// ReadPage is how many rows one read of a followed table returns; a full
// page is followed by another read at once.
const ReadPage = 500

// Stream describes a followed table: how to read its rows after a sequence
// number, how to number them, and who rings when rows are appended.
type Stream[R any] struct {
	// Topic names the stream in the logs.
	Topic string
	// Read returns up to ReadPage rows after seq, in order.
	Read func(ctx context.Context, after int64) ([]R, error)
	// Seq numbers a row; final says no row follows it.
	Seq func(R) (seq int64, final bool)
	// Wake is given the follower's ring, to call whenever the table may
	// have news (its doorbell, a safety-net poll), and returns a function,
	// called when the follower ends, that stops the ringing. A source
	// shared by many followers rings them all from one doorbell and one
	// poll (see feed and generate). Read is called only after Wake.
	Wake func(ring func()) (stop func())
}

// FollowAs sends the rows after last, turned into what the channel carries
// by conv, then each row appended later, re-reading the table after the
// last row sent every time s.Wake rings. Nothing is lost and nothing
// repeats. The channel closes after a final row or when ctx ends. conv
// skips a row by reporting false; a row it fails on ends the stream, after
// fail (if not nil) learns why. Turning rows here, on the follower's
// goroutine, spares a stream that needs another shape (a GraphQL model) a
// second goroutine and channel.
//
// A follower has no goroutine while it waits: a ring starts a short-lived
// one that reads and delivers what is new, then ends. Under a Push (see
// WithPush) it also hands each value to the consumer itself.
func FollowAs[R, Out any](ctx context.Context, log *slog.Logger, s Stream[R], last int64, conv func(R) (Out, bool, error), fail func(error)) <-chan Out {
	f := &streamFollower[R, Out]{ctx: ctx, log: log, s: s, last: last, conv: conv, fail: fail,
		out: make(chan Out, 1), notify: claimPush(ctx)}
	// The first read starts once the rings are set up; a ring before then
	// asks for another.
	f.running = true
	f.stopWake = s.Wake(f.ring)
	f.stopCtx = AtEnd(ctx, f.ring)
	go f.run()
	return f.out
}

// streamFollower is one FollowAs stream.
type streamFollower[R, Out any] struct {
	ctx    context.Context
	log    *slog.Logger
	s      Stream[R]
	conv   func(R) (Out, bool, error)
	fail   func(error)
	out    chan Out
	notify func() // the consumer's, under a Push; nil otherwise

	stopWake func()
	stopCtx  func() bool

	last int64 // the seq of the last row handled; only the running read uses it

	mu      sync.Mutex
	running bool // a goroutine is reading and delivering
	again   bool // rung while running: read once more before stopping
	done    bool
}

// ring asks for a read: at once on a goroutine of its own, or, while one
// runs, once more after it.
func (f *streamFollower[R, Out]) ring() {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.done:
	case f.running:
		f.again = true
	default:
		f.running = true
		go f.run()
	}
}

// run reads and delivers until nothing more is new, then ends, leaving
// the follower to its ring; or ends the stream.
func (f *streamFollower[R, Out]) run() {
	for {
		if f.ctx.Err() != nil {
			f.finish()
			return
		}
		rows, err := f.s.Read(f.ctx, f.last)
		if err != nil && f.ctx.Err() == nil {
			f.log.WarnContext(f.ctx, "follow events", "topic", f.s.Topic, "err", err)
		}
		for _, row := range rows {
			m, send, err := f.conv(row)
			if err != nil {
				if f.fail != nil {
					f.fail(err)
				}
				f.finish()
				return
			}
			if send && !f.deliver(m) {
				f.finish()
				return
			}
			n, final := f.s.Seq(row)
			f.last = n
			if final {
				f.finish()
				return
			}
		}
		if len(rows) == ReadPage {
			continue // more are waiting
		}
		f.mu.Lock()
		if f.again {
			f.again = false
			f.mu.Unlock()
			continue
		}
		f.running = false
		f.mu.Unlock()
		return
	}
}

// deliver puts m on the channel, waiting while the consumer is behind, and
// tells a pushed consumer; false when ctx ended first.
func (f *streamFollower[R, Out]) deliver(m Out) bool {
	select {
	case f.out <- m:
	case <-f.ctx.Done():
		return false
	}
	if f.notify != nil {
		f.notify()
	}
	return true
}

// finish ends the stream: no more rings, the channel closed, and a pushed
// consumer told. Only the running goroutine calls it.
func (f *streamFollower[R, Out]) finish() {
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	f.stopCtx()
	f.stopWake()
	close(f.out)
	if f.notify != nil {
		f.notify()
	}
}

// WaitFor blocks until a wake-up, the poll interval, or the end of ctx
// (false).
func WaitFor(ctx context.Context, wake <-chan struct{}, poll time.Duration) bool {
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

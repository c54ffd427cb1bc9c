package events

import (
	"context"
	"log/slog"
	"time"
)

// ReadPage is how many rows one read of a followed table returns; a full
// page is followed by another read at once.
const ReadPage = 500

// Stream describes a followed table: where its doorbell rings, how to read
// its rows after a sequence number, and how to number them.
type Stream[R any] struct {
	// Topic is the doorbell rung when rows are appended.
	Topic string
	// Read returns up to ReadPage rows after seq, in order.
	Read func(ctx context.Context, after int64) ([]R, error)
	// Seq numbers a row; final says no row follows it.
	Seq func(R) (seq int64, final bool)
	// Poll is the safety net behind the doorbell.
	Poll time.Duration
	// Wake, when set, replaces both the doorbell of Topic and the Poll
	// timer: it returns the follower's wake-ups and a function, called when
	// the follower ends, that stops them. A source shared by many followers
	// can then ring the doorbell and run the safety net once for all of
	// them (see feed).
	Wake func() (<-chan struct{}, func())
}

// Follow sends the rows after last, then each row appended later, re-reading
// the table after the last row sent every time the doorbell rings or the
// poll interval passes (or, with s.Wake, whenever that wakes it). Nothing is
// lost and nothing repeats. The channel closes after a final row or when ctx
// ends.
func Follow[R any](ctx context.Context, b *Bus, log *slog.Logger, s Stream[R], last int64) <-chan R {
	return FollowAs(ctx, b, log, s, last, func(r R) (R, bool, error) { return r, true, nil }, nil)
}

// FollowAs is Follow with each row turned into what the channel carries by
// conv, on the follower's own goroutine: a stream that needs its rows in
// another shape (a GraphQL model) costs no second goroutine and channel per
// follower. conv skips a row by reporting false; a row it fails on ends
// the stream, after fail (if not nil) learns why.
func FollowAs[R, Out any](ctx context.Context, b *Bus, log *slog.Logger, s Stream[R], last int64, conv func(R) (Out, bool, error), fail func(error)) <-chan Out {
	out := make(chan Out)
	var (
		wake <-chan struct{}
		stop func()
	)
	wait := func() bool { return WaitFor(ctx, wake, s.Poll) }
	if s.Wake != nil {
		wake, stop = s.Wake()
		wait = func() bool {
			select {
			case <-ctx.Done():
				return false
			case <-wake:
				return true
			}
		}
	} else {
		wake, stop = b.Subscribe(s.Topic)
	}
	go func() {
		defer close(out)
		defer stop()
		for {
			rows, err := readOnFreshStack(ctx, s.Read, last)
			if err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "follow events", "topic", s.Topic, "err", err)
			}
			for _, row := range rows {
				m, send, err := conv(row)
				if err != nil {
					if fail != nil {
						fail(err)
					}
					return
				}
				if send {
					select {
					case out <- m:
					case <-ctx.Done():
						return
					}
				}
				n, final := s.Seq(row)
				last = n
				if final {
					return
				}
			}
			if len(rows) == ReadPage {
				continue // more are waiting
			}
			if !wait() {
				return
			}
		}
	}()
	return out
}

// readOnFreshStack runs read on a short-lived goroutine. A read goes deep
// (the ORM, the database driver) and a goroutine's stack that grew stays
// grown; the follower's goroutine, which waits most of its life, should not
// pay for the deepest read it ever made. A goroutine per read costs far
// less than the query.
func readOnFreshStack[R any](ctx context.Context, read func(context.Context, int64) ([]R, error), after int64) ([]R, error) {
	type result struct {
		rows []R
		err  error
	}
	done := make(chan result, 1)
	go func() {
		rows, err := read(ctx, after)
		done <- result{rows, err}
	}()
	r := <-done
	return r.rows, r.err
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

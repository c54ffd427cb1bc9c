package events

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// sharedReadTimeout bounds a shared read, which runs on no caller's context.
const sharedReadTimeout = 10 * time.Second

// SharedReads lets the followers of one process that ask for the same rows
// at once share one read: a doorbell that wakes a thousand subscribers of
// one stream costs one query, not a thousand. Readers must only range over
// the shared slice, never change it.
type SharedReads[R any] struct {
	group singleflight.Group
}

// Do returns read's rows, sharing one call among the callers of key that
// overlap it. read runs on a context of its own, so that one caller going
// away does not fail the others; ctx only bounds this caller's wait.
func (s *SharedReads[R]) Do(ctx context.Context, key string, read func(ctx context.Context) ([]R, error)) ([]R, error) {
	ch := s.group.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
		defer cancel()
		return read(rctx)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]R), nil
	}
}

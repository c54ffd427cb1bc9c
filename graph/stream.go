package graph

import (
	"context"
	"sync"
)

// failStream returns what records the error that ends the subscription of
// ctx, for a stream that turns its rows into models (feed.StreamAs,
// generate.StreamAs) and ends on one it cannot turn. The transport sends the
// error to the client instead of a normal end (see StreamFailure), so that
// a client never mistakes a broken stream for a finished one.
func failStream(ctx context.Context) func(error) {
	fs, ok := ctx.Value(streamFailureKey{}).(*streamFailure)
	if !ok {
		return nil
	}
	return fs.set
}

type streamFailure struct {
	mu  sync.Mutex
	err error
}

func (f *streamFailure) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

type streamFailureKey struct{}

// WithStreamFailure returns ctx in which a subscription that ends on an
// error records it; the transport middleware calls it for each operation.
func WithStreamFailure(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamFailureKey{}, &streamFailure{})
}

// StreamFailure returns the error that ended the subscription of ctx (made
// by WithStreamFailure), or nil when it ended normally.
func StreamFailure(ctx context.Context) error {
	f, ok := ctx.Value(streamFailureKey{}).(*streamFailure)
	if !ok {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

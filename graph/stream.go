package graph

import (
	"context"
	"sync"
)

// translate turns a domain stream into a GraphQL one. A row that cannot be
// translated ends the stream: the error is kept for the transport (see
// StreamFailure), which sends it to the client instead of a normal end, so
// that a client never mistakes a broken stream for a finished one.
func translate[In, Out any](ctx context.Context, in <-chan In, f func(In) (Out, error)) <-chan Out {
	out := make(chan Out)
	go func() {
		defer close(out)
		for row := range in {
			m, err := f(row)
			if err != nil {
				if fs, ok := ctx.Value(streamFailureKey{}).(*streamFailure); ok {
					fs.set(err)
				}
				return
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// failStream returns what records the error that ends the subscription of
// ctx, for a stream that translates its rows itself (see feed.StreamAs).
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

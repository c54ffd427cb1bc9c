package generate

import (
	"context"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/events"
)

// Stream replays a generation's events after afterSeq, then streams new ones
// as they commit, and closes the channel after the final event (or when ctx
// ends). Nothing is lost and nothing repeats: every wake-up re-reads the
// table after the last sequence sent.
// Returns NOT_FOUND for a generation that is not the actor's.
func (s *Service) Stream(ctx context.Context, a actor.Actor, genID uuid.UUID, afterSeq int) (<-chan Event, error) {
	return StreamAs(ctx, s, a, genID, afterSeq, func(e Event) (Event, error) { return e, nil }, nil)
}

// StreamAs is Stream with each event turned into what the channel carries
// by conv, on the follower's goroutine (see events.FollowAs): a GraphQL
// subscription gets its models without a goroutine of its own. An event
// conv fails on ends the stream, after fail (if not nil) learns why.
func StreamAs[Out any](ctx context.Context, s *Service, a actor.Actor, genID uuid.UUID, afterSeq int, conv func(Event) (Out, error), fail func(error)) (<-chan Out, error) {
	if err := a.RequireScope(actor.ScopeEventsRead); err != nil {
		return nil, err
	}
	if _, err := s.get(ctx, a, genID); err != nil {
		return nil, err
	}
	var w *watcher
	return events.FollowAs(ctx, s.log, events.Stream[Event]{
		Topic: events.GenerationTopic(genID.String()),
		Read:  func(ctx context.Context, after int64) ([]Event, error) { return w.read(ctx, after) },
		Seq:   func(e Event) (int64, bool) { return int64(e.Seq), e.Final() },
		Wake: func(ring func()) func() {
			w = s.watch(genID, int64(afterSeq), ring)
			return func() { s.unwatch(w) }
		},
	}, int64(afterSeq), func(e Event) (Out, bool, error) {
		m, err := conv(e)
		return m, true, err
	}, fail), nil
}

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
	if err := a.RequireScope(actor.ScopeEventsRead); err != nil {
		return nil, err
	}
	if _, err := s.get(ctx, a, genID); err != nil {
		return nil, err
	}
	w := s.watch(genID, int64(afterSeq))
	return events.Follow(ctx, s.bus, s.log, events.Stream[Event]{
		Topic: events.GenerationTopic(genID.String()),
		Read:  w.read,
		Seq:   func(e Event) (int64, bool) { return int64(e.Seq), e.Final() },
		Wake:  func() (<-chan struct{}, func()) { return w.wake, func() { s.unwatch(w) } },
	}, int64(afterSeq)), nil
}

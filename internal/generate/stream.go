package generate

import (
	"context"
	"strconv"

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
	return events.Follow(ctx, s.bus, s.log, events.Stream[Event]{
		Topic: events.GenerationTopic(genID.String()),
		Read: func(ctx context.Context, after int64) ([]Event, error) {
			return s.sharedEventsAfter(ctx, genID, int(after))
		},
		Seq:  func(e Event) (int64, bool) { return int64(e.Seq), e.Final() },
		Poll: s.cfg.PollInterval,
	}, int64(afterSeq)), nil
}

// sharedEventsAfter is EventsAfter with one query for every subscriber of
// this process that asks for the same generation from the same position at
// once: a thousand viewers of one job woken by one doorbell cost one read,
// not a thousand. Readers only range over the shared slice.
func (s *Service) sharedEventsAfter(ctx context.Context, genID uuid.UUID, afterSeq int) ([]Event, error) {
	key := genID.String() + ":" + strconv.Itoa(afterSeq)
	return s.reads.Do(ctx, key, func(ctx context.Context) ([]Event, error) { return s.EventsAfter(ctx, genID, afterSeq) })
}

package generate

import (
	"context"
	"strconv"
	"time"

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
	if _, err := s.Get(ctx, a, genID); err != nil {
		return nil, err
	}
	return follow(ctx, s, events.GenerationTopic(genID.String()), int64(afterSeq),
		func(ctx context.Context, after int64) ([]Event, error) {
			return s.sharedEventsAfter(ctx, genID, int(after))
		},
		func(e Event) (int64, bool) { return int64(e.Seq), e.Final() }), nil
}

// StreamFeed is Stream for the actor's live feed, which never ends by itself.
func (s *Service) StreamFeed(ctx context.Context, a actor.Actor, afterSeq int64) <-chan FeedEvent {
	userID := a.UserID
	return follow(ctx, s, events.UserTopic(userID.String()), afterSeq,
		func(ctx context.Context, after int64) ([]FeedEvent, error) { return s.FeedAfter(ctx, userID, after) },
		func(e FeedEvent) (int64, bool) { return e.Seq, false })
}

// readPage is how many rows one read returns; a full page is followed by
// another read at once.
const readPage = 500

// follow sends the rows read after the last sequence sent, each time topic's
// doorbell rings or the poll interval passes, until a final row or the end
// of ctx.
func follow[E any](ctx context.Context, s *Service, topic string, last int64,
	read func(ctx context.Context, after int64) ([]E, error), seq func(E) (n int64, final bool)) <-chan E {
	out := make(chan E)
	wake, stop := s.bus.Subscribe(topic)
	go func() {
		defer close(out)
		defer stop()
		for {
			rows, err := read(ctx, last)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "follow events", "topic", topic, "err", err)
			}
			for _, row := range rows {
				select {
				case out <- row:
				case <-ctx.Done():
					return
				}
				n, final := seq(row)
				last = n
				if final {
					return
				}
			}
			if len(rows) == readPage {
				continue // more are waiting
			}
			if !waitFor(ctx, wake, s.cfg.PollInterval) {
				return
			}
		}
	}()
	return out
}

// waitFor blocks until a wake-up, the poll interval, or the end of ctx
// (false).
func waitFor(ctx context.Context, wake <-chan struct{}, poll time.Duration) bool {
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

// sharedEventsAfter is EventsAfter with one query for every subscriber of
// this process that asks for the same generation from the same position at
// once: a thousand viewers of one job woken by one doorbell cost one read,
// not a thousand. Readers only range over the shared slice.
func (s *Service) sharedEventsAfter(ctx context.Context, genID uuid.UUID, afterSeq int) ([]Event, error) {
	key := genID.String() + ":" + strconv.Itoa(afterSeq)
	ch := s.reads.DoChan(key, func() (any, error) {
		// Not the first caller's ctx: the others must not fail with it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return s.EventsAfter(rctx, genID, afterSeq)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]Event), nil
	}
}

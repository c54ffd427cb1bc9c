package generate

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/events"
)

// Stream replays a generation's events after afterSeq, then streams new ones
// as they commit, and closes the channel after the final event (or when ctx
// ends). Nothing is lost and nothing repeats: every wake-up re-reads the
// table after the last sequence sent. The caller has checked ownership.
func (s *Service) Stream(ctx context.Context, genID uuid.UUID, afterSeq int) <-chan Event {
	out := make(chan Event)
	wake, stop := s.bus.Subscribe(events.GenerationTopic(genID.String()))
	go func() {
		defer close(out)
		defer stop()
		last := afterSeq
		for {
			evs, err := s.sharedEventsAfter(ctx, genID, last)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "stream generation events", "err", err)
				}
			}
			for i := range evs {
				select {
				case out <- evs[i]:
				case <-ctx.Done():
					return
				}
				last = evs[i].Seq
				if evs[i].Final() {
					return
				}
			}
			if len(evs) == 500 {
				continue // more are waiting
			}
			if !waitFor(ctx, wake, s.cfg.PollInterval) {
				return
			}
		}
	}()
	return out
}

// StreamFeed is Stream for a user's live feed, which never ends by itself.
func (s *Service) StreamFeed(ctx context.Context, userID uuid.UUID, afterSeq int64) <-chan FeedEvent {
	out := make(chan FeedEvent)
	wake, stop := s.bus.Subscribe(events.UserTopic(userID.String()))
	go func() {
		defer close(out)
		defer stop()
		last := afterSeq
		for {
			evs, err := s.FeedAfter(ctx, userID, last)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "stream feed", "err", err)
			}
			for i := range evs {
				select {
				case out <- evs[i]:
				case <-ctx.Done():
					return
				}
				last = evs[i].Seq
			}
			if len(evs) == 500 {
				continue
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

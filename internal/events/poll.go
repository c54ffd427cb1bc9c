package events

import (
	"context"
	"log/slog"
	"time"
)

// PollPage bounds the streams one safety-net poll statement asks about.
const PollPage = 1000

// PollHeads is the safety net behind the doorbells of one kind of stream
// (feeds, generations), one goroutine for the whole process: every interval
// it takes the streams followed here (followed; none ends it), reads their
// heads (the last seq of each, 0 for one with none) PollPage at a time,
// and hands each stream its head (polled), which wakes the followers a
// lost doorbell left behind. A page that fails is logged and skipped until
// the next interval.
func PollHeads[K comparable](every time.Duration, log *slog.Logger, what string,
	followed func() []K, heads func(context.Context, []K) (map[K]int64, error), polled func(K, int64)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		keys := followed()
		if len(keys) == 0 {
			return
		}
		for len(keys) > 0 {
			page := keys[:min(PollPage, len(keys))]
			keys = keys[len(page):]
			ctx, cancel := context.WithTimeout(context.Background(), every)
			got, err := heads(ctx, page)
			cancel()
			if err != nil {
				log.Warn("follow "+what+": poll", "streams", len(page), "err", err)
				continue
			}
			for _, k := range page {
				polled(k, got[k])
			}
		}
	}
}

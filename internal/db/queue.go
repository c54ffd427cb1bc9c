package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Interval is d as a Postgres interval, for `?::interval`.
func Interval(d time.Duration) string { return fmt.Sprintf("%d milliseconds", d.Milliseconds()) }

// ClaimDue takes the row of table due soonest (next_attempt_at <= now()),
// counts the try (attempts + 1) and makes it due again only after lease, so
// that a worker that dies mid-try loses nothing. Workers of every replica
// claim from one table without waiting for one another (SKIP LOCKED). It
// returns nil when no row is due. The outboxes (mail, webhooks) share it.
func ClaimDue[T any](ctx context.Context, idb bun.IDB, table string, lease time.Duration) (*T, error) {
	var rows []T
	err := idb.NewRaw(`
		WITH next AS (
			SELECT id FROM ?0
			WHERE next_attempt_at <= now()
			ORDER BY next_attempt_at, id
			LIMIT 1
			FOR UPDATE SKIP LOCKED
		)
		UPDATE ?0 AS q
		SET attempts = q.attempts + 1, next_attempt_at = now() + ?1::interval
		FROM next WHERE q.id = next.id
		RETURNING q.*`, bun.Ident(table), Interval(lease)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim from %s: %w", table, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// UntilNextDue is how long until the next row of table is due, poll at
// most (and when none is, or the question fails).
func UntilNextDue(ctx context.Context, idb bun.IDB, table string, poll time.Duration) time.Duration {
	var ms []float64
	err := idb.NewRaw(`SELECT extract(epoch FROM min(next_attempt_at) - now()) * 1000
		FROM ? WHERE next_attempt_at IS NOT NULL HAVING count(*) > 0`, bun.Ident(table)).Scan(ctx, &ms)
	if err != nil || len(ms) == 0 {
		return poll
	}
	return min(max(time.Duration(ms[0])*time.Millisecond, time.Millisecond), poll)
}

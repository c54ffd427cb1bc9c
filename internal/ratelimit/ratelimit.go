// Package ratelimit counts events per key in sliding windows kept in
// Postgres, so that every replica sees the same counts. Events are stamped
// and windows measured by the Limiter's clock; replicas' clocks agree to far
// less than the shortest window.
package ratelimit

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/clock"
)

// Window allows at most Max events per key within Period.
type Window struct {
	Max    int
	Period time.Duration
}

// Limiter counts events in the rate_events table.
type Limiter struct {
	db    *bun.DB
	clock clock.Clock
}

// New returns a Limiter on db that tells the time by clk; nil means the
// machine's clock.
func New(db *bun.DB, clk clock.Clock) *Limiter { return &Limiter{db: db, clock: clock.Or(clk)} }

// Decision says whether an event may happen and, if not, when it may.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration

	at time.Time // when Take recorded the event it allowed
}

// RetryAfterSeconds rounds RetryAfter up to whole seconds, at least 1.
func (d Decision) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(d.RetryAfter.Seconds())))
}

// Take records one event for key if every window allows it. Concurrent
// takers of one key are serialised by a transaction-scoped advisory lock, so
// a limit of N lets exactly N through however many replicas ask at once.
func (l *Limiter) Take(ctx context.Context, key string, windows ...Window) (Decision, error) {
	var d Decision
	err := l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", lockKey(key)); err != nil {
			return err
		}
		// The time is read once the lock is held, so that one key's events
		// are stamped in the order they were let through.
		now := l.clock.Now()
		var err error
		if d, err = check(ctx, tx, key, windows, now); err != nil || !d.Allowed {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO rate_events (key, at) VALUES (?, ?)", key, now)
		d.at = now
		return err
	})
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return d, nil
}

// Check reports whether one more event for key would be allowed, without
// recording one.
func (l *Limiter) Check(ctx context.Context, key string, windows ...Window) (Decision, error) {
	d, err := check(ctx, l.db, key, windows, l.clock.Now())
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return d, nil
}

// Record adds one event for key unconditionally (e.g. a failed sign-in).
func (l *Limiter) Record(ctx context.Context, key string) error {
	if _, err := l.db.ExecContext(ctx, "INSERT INTO rate_events (key, at) VALUES (?, ?)", key, l.clock.Now()); err != nil {
		return fmt.Errorf("rate limit %s: %w", key, err)
	}
	return nil
}

// Give gives back the event a Take allowed with d, for something that then
// did not happen after all (the work it counted was refused before it ran).
// It does nothing for a Decision that allowed nothing.
func (l *Limiter) Give(ctx context.Context, key string, d Decision) error {
	if !d.Allowed || d.at.IsZero() {
		return nil
	}
	_, err := l.db.ExecContext(ctx, `DELETE FROM rate_events WHERE ctid IN (
		SELECT ctid FROM rate_events WHERE key = ? AND at = ? LIMIT 1)`, key, d.at)
	if err != nil {
		return fmt.Errorf("rate limit %s: %w", key, err)
	}
	return nil
}

// Reset forgets every event of key (e.g. failures after a good sign-in).
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if _, err := l.db.ExecContext(ctx, "DELETE FROM rate_events WHERE key = ?", key); err != nil {
		return fmt.Errorf("rate limit %s: %w", key, err)
	}
	return nil
}

// Sweep deletes events older than maxAge, the longest window in use.
func (l *Limiter) Sweep(ctx context.Context, maxAge time.Duration) (int64, error) {
	res, err := l.db.ExecContext(ctx, "DELETE FROM rate_events WHERE at < ?", l.clock.Now().Add(-maxAge))
	if err != nil {
		return 0, fmt.Errorf("sweep rate events: %w", err)
	}
	return res.RowsAffected()
}

// check decides whether one more event for key is allowed at now.
func check(ctx context.Context, idb bun.IDB, key string, windows []Window, now time.Time) (Decision, error) {
	d := Decision{Allowed: true}
	for _, w := range windows {
		var (
			count  int
			oldest time.Time
		)
		// The oldest event inside the window tells when a slot frees up.
		err := idb.NewRaw(`
			SELECT count(*), coalesce(min(at), ?1)
			FROM rate_events WHERE key = ?0 AND at > ?1`,
			key, now.Add(-w.Period)).
			Scan(ctx, &count, &oldest)
		if err != nil {
			return Decision{}, err
		}
		if count >= w.Max {
			// With Max events in the window, the next is allowed once the
			// (count-Max+1)-th oldest leaves it; for the usual count == Max
			// that is the oldest.
			retry := oldest.Add(w.Period).Sub(now)
			if !d.Allowed {
				retry = max(retry, d.RetryAfter)
			}
			d = Decision{Allowed: false, RetryAfter: max(retry, time.Second)}
		}
	}
	return d, nil
}

func lockKey(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("ratelimit:" + key))
	return int64(h.Sum64())
}

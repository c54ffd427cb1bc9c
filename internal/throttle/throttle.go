// Package throttle charges the cost of operations against leaky buckets kept
// in Postgres, one per caller (an API key, a session, or an anonymous client
// IP), so that every replica charges the same bucket. A bucket holds up to
// its size in points and leaks its restore rate every second; an operation
// runs only if its cost still fits. Time is the database's clock alone, so
// replicas whose clocks drift still agree.
package throttle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db"
)

// Bucket is the setting of one kind of caller's buckets: Size points at
// most, RestoreRate points leaking back a second. A Size of 0 turns the limit
// off.
type Bucket struct {
	Size        int
	RestoreRate int
}

// Enabled reports whether the bucket limits anything.
func (b Bucket) Enabled() bool { return b.Size > 0 && b.RestoreRate > 0 }

// Limiter charges costs against the cost_buckets table.
type Limiter struct{ db *bun.DB }

// New returns a Limiter on db.
func New(db *bun.DB) *Limiter { return &Limiter{db: db} }

// Status is the outcome of a charge and the bucket after it, in the shape
// partners know from Shopify's throttleStatus.
type Status struct {
	// Allowed is false when the cost did not fit: nothing was charged.
	Allowed bool
	// Maximum is the bucket's size, Available what is free in it now
	// (after the charge when allowed), RestoreRate the points a second that
	// come back.
	Maximum     float64
	Available   float64
	RestoreRate float64
	// RetryAfter is, when refused, how long until enough has leaked back
	// for the cost.
	RetryAfter time.Duration
}

// RetryAfterSeconds rounds RetryAfter up to whole seconds, at least 1.
func (s Status) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(s.RetryAfter.Seconds())))
}

// leaked is the bucket's level now: what it held at updated_at less what
// has leaked since, never below 0. now() may be earlier than updated_at for
// a statement that waited for the row's lock behind a later one: nothing
// leaks then, rather than the level growing.
const leaked = `greatest(0, level - ?1 * greatest(0, extract(epoch FROM now() - updated_at)::float8))`

// Charge takes cost points from key's bucket b if they fit, atomically: one
// UPDATE computes the leaked level and charges it under the row's lock, so
// concurrent charges from any number of replicas cannot both take the last
// points. A refused charge takes nothing. cost must not exceed b.Size (the
// settings ensure it for every operation the complexity limit lets
// through).
func (l *Limiter) Charge(ctx context.Context, key string, b Bucket, cost int) (Status, error) {
	if cost > b.Size {
		return Status{}, fmt.Errorf("charge %s: cost %d exceeds the bucket's size %d", key, cost, b.Size)
	}
	st := Status{Maximum: float64(b.Size), RestoreRate: float64(b.RestoreRate)}
	// A bucket's first charge inserts it; an insert that loses the race to
	// another replica's charges the row that one made, hence two rounds.
	for range 2 {
		var level float64
		err := l.db.NewRaw(`UPDATE cost_buckets
			SET level = `+leaked+` + ?2, updated_at = greatest(updated_at, now())
			WHERE key = ?0 AND `+leaked+` + ?2 <= ?3
			RETURNING level`, key, b.RestoreRate, cost, b.Size).Scan(ctx, &level)
		if err == nil {
			st.Allowed, st.Available = true, max(0, float64(b.Size)-level)
			return st, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Status{}, fmt.Errorf("charge %s: %w", key, err)
		}
		err = l.db.NewRaw(`INSERT INTO cost_buckets (key, level, updated_at) VALUES (?0, ?1, now())
			ON CONFLICT (key) DO NOTHING RETURNING level`, key, cost).Scan(ctx, &level)
		if err == nil {
			st.Allowed, st.Available = true, float64(b.Size-cost)
			return st, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Status{}, fmt.Errorf("charge %s: %w", key, err)
		}
	}
	// The row exists and the cost does not fit: say how full it is, and
	// when the cost will fit.
	var level float64
	err := l.db.NewRaw(`SELECT `+leaked+` FROM cost_buckets WHERE key = ?0`, key, b.RestoreRate).Scan(ctx, &level)
	if err != nil {
		return Status{}, fmt.Errorf("read bucket %s: %w", key, err)
	}
	st.Available = max(0, float64(b.Size)-level)
	wait := (level + float64(cost) - float64(b.Size)) / float64(b.RestoreRate)
	st.RetryAfter = time.Duration(max(wait, 0) * float64(time.Second))
	return st, nil
}

// Sweep deletes the buckets untouched for idle, which must be at least the
// time the largest bucket takes to leak empty: such a bucket is full again
// (its absence means full), and an anonymous one names a client's IP.
func (l *Limiter) Sweep(ctx context.Context, idle time.Duration) (int, error) {
	res, err := l.db.ExecContext(ctx, "DELETE FROM cost_buckets WHERE updated_at < now() - ?::interval", db.Interval(idle))
	if err != nil {
		return 0, fmt.Errorf("sweep cost buckets: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DrainTime is how long b takes to leak from full to empty.
func (b Bucket) DrainTime() time.Duration {
	if !b.Enabled() {
		return 0
	}
	return time.Duration(math.Ceil(float64(b.Size)/float64(b.RestoreRate))) * time.Second
}

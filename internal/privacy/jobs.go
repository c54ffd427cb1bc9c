package privacy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
)

// Topic is rung when an export or deletion is ready for a worker.
const Topic = "privacy-jobs"

// MaxAttempts is how often a job is tried before it waits for support (its
// error stays on the request, which the admin queue shows).
const MaxAttempts = 5

// RunWorkers runs export and deletion jobs, one at a time per worker,
// until ctx ends. A job whose worker dies is taken over when its lease
// runs out; a job that fails is tried again, up to MaxAttempts.
func (s *Service) RunWorkers(ctx context.Context, owner string, workers int) {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { s.work(ctx, fmt.Sprintf("%s/privacy-%d", owner, i)) })
	}
	wg.Wait()
}

func (s *Service) work(ctx context.Context, owner string) {
	wake, stop := s.bus.Subscribe(Topic)
	defer stop()
	for ctx.Err() == nil {
		r, err := s.claim(ctx, owner)
		if err != nil {
			s.log.ErrorContext(ctx, "claim privacy job", "err", err)
		}
		if r == nil {
			events.WaitFor(ctx, wake, s.cfg.PollInterval)
			continue
		}
		s.run(ctx, owner, r)
	}
}

// claim takes the job due soonest that is verified (and not waiting out the
// backoff of a failed attempt), or whose worker's lease ran out.
func (s *Service) claim(ctx context.Context, owner string) (*Request, error) {
	kinds := make([]Kind, 0, len(s.jobs))
	for k := range s.jobs {
		kinds = append(kinds, k)
	}
	if len(kinds) == 0 {
		return nil, nil
	}
	var rs []Request
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewRaw(`
			SELECT * FROM privacy_requests
			WHERE kind IN (?) AND attempts < ?
			  AND ((status = 'verified' AND (lease_expires_at IS NULL OR lease_expires_at < now()))
			    OR (status = 'in_progress' AND lease_expires_at < now()))
			ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, bun.In(kinds), MaxAttempts).Scan(ctx, &rs); err != nil {
			return fmt.Errorf("find job: %w", err)
		}
		if len(rs) == 0 {
			return nil
		}
		r := &rs[0]
		if r.Status == StatusVerified {
			if err := s.moveTx(ctx, tx, r, StatusInProgress, System, "started"); err != nil {
				return err
			}
		} else if err := audit(ctx, tx, r.ID, "taken over", System, "its worker stopped"); err != nil {
			return err
		}
		return tx.NewUpdate().Model(r).Set("attempts = attempts + 1, lease_owner = ?, lease_expires_at = now() + ?::interval, updated_at = now()",
			owner, db.Interval(s.cfg.Lease)).Where("id = ?", r.ID).Returning("*").Scan(ctx)
	})
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	return &rs[0], nil
}

// errLeaseLost ends a job whose lease another worker took.
var errLeaseLost = errors.New("privacy: lease lost")

// run runs one claimed job, renewing its lease with each progress report
// and at least every third of the lease.
func (s *Service) run(ctx context.Context, owner string, r *Request) {
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	last := -1
	renew := func(percent int) error {
		mu.Lock()
		defer mu.Unlock()
		percent = min(max(percent, 0), 99)
		res, err := s.db.NewRaw(`UPDATE privacy_requests SET progress = ?, lease_expires_at = now() + ?::interval, updated_at = now()
			WHERE id = ? AND lease_owner = ? AND status = 'in_progress'`, percent, db.Interval(s.cfg.Lease), r.ID, owner).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errLeaseLost
		}
		if percent != last {
			last = percent
			r.Progress = percent
			return feedAppend(ctx, s.db, r)
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(s.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock() // the job's progress reports write r.Progress
				p := r.Progress
				mu.Unlock()
				if err := renew(p); errors.Is(err, errLeaseLost) {
					cancel(err)
					return
				}
			}
		}
	}()
	err := s.jobs[r.Kind](jobCtx, r, func(p int) {
		if err := renew(p); errors.Is(err, errLeaseLost) {
			cancel(err)
		}
	})
	close(done)
	if errors.Is(context.Cause(jobCtx), errLeaseLost) || ctx.Err() != nil {
		return // another worker has it, or we are stopping: the lease runs out
	}
	if err != nil {
		s.log.ErrorContext(ctx, "privacy job failed", "request", r.ID, "kind", r.Kind, "attempt", r.Attempts, "err", err)
		msg := err.Error()
		_ = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			// Tried again after attempts² × RetryBackoff (30 s: 30 s, 2 min,
			// 4.5 min, 8 min), so that a passing outage (storage, Stripe)
			// does not use up the attempts.
			if _, err := tx.NewRaw(`UPDATE privacy_requests SET error = ?, lease_owner = NULL,
				lease_expires_at = now() + make_interval(secs => attempts * attempts * ?), updated_at = now() WHERE id = ?`,
				msg, s.cfg.RetryBackoff.Seconds(), r.ID).Exec(ctx); err != nil {
				return err
			}
			r.Status = StatusInProgress
			return s.moveTx(ctx, tx, r, StatusVerified, System, fmt.Sprintf("attempt %d failed; it will be tried again", r.Attempts))
		})
		return
	}
	if err := s.Finish(ctx, r); err != nil {
		s.log.ErrorContext(ctx, "finish privacy job", "request", r.ID, "err", err)
	}
}

// Finish completes a job's request (its job has done its work).
func (s *Service) Finish(ctx context.Context, r *Request) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(r).Where("id = ?", r.ID).For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("reload request: %w", err)
		}
		if _, err := tx.NewRaw("UPDATE privacy_requests SET progress = 100, error = NULL WHERE id = ?", r.ID).Exec(ctx); err != nil {
			return err
		}
		r.Progress = 100
		return s.moveTx(ctx, tx, r, StatusCompleted, System, "")
	})
}

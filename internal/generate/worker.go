package generate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/work"
)

// storagePause is how long a worker waits after giving a job back because
// object storage was unavailable.
const storagePause = time.Second

var (
	errLeaseLost = errors.New("generate: lease lost to another worker")
	errCanceled  = errors.New("generate: canceled by the user")
)

// RunWorkers runs cfg.Workers workers until ctx ends; on the way out each
// gives back the lease of the job it was running, so another replica picks
// it up at once instead of after the lease expires.
func (s *Service) RunWorkers(ctx context.Context, owner string) {
	var wg sync.WaitGroup
	for i := range s.cfg.Workers {
		wg.Go(func() { s.workLoop(ctx, fmt.Sprintf("%s/%d", owner, i)) })
	}
	wg.Wait()
}

func (s *Service) workLoop(ctx context.Context, owner string) {
	wake, stop := s.bus.Subscribe(events.QueueTopic)
	defer stop()
	for ctx.Err() == nil {
		g, err := s.claim(ctx, owner)
		if err != nil {
			if ctx.Err() == nil {
				s.log.ErrorContext(ctx, "claim generation", "err", err)
			}
			events.WaitFor(ctx, wake, time.Second)
			continue
		}
		if g == nil {
			events.WaitFor(ctx, wake, s.cfg.PollInterval)
			continue
		}
		s.run(ctx, owner, g)
	}
}

// claim takes the oldest job that is queued, or whose worker's lease ran out
// (the worker died), without waiting for jobs other workers hold, and keeps
// each user within their running limit (the setting, or their plan's when
// that is more: user_limits, set by billing).
func (s *Service) claim(ctx context.Context, owner string) (*Generation, error) {
	var gs []Generation
	err := s.db.NewRaw(`
		WITH next AS (
			SELECT g.id FROM generations g
			WHERE (g.status = 'queued' OR (g.status = 'running' AND g.lease_expires_at < now()))
			  AND (SELECT count(*) FROM generations r
			       WHERE r.user_id = g.user_id AND r.status = 'running' AND r.lease_expires_at >= now())
			      < GREATEST(?, coalesce((SELECT running_jobs_limit FROM user_limits l WHERE l.user_id = g.user_id), 0))
			ORDER BY g.queued_at, g.id
			LIMIT 1
			FOR UPDATE OF g SKIP LOCKED
		)
		UPDATE generations g
		SET status = 'running', lease_owner = ?, lease_expires_at = now() + ?::interval,
		    attempts = g.attempts + 1, started_at = coalesce(g.started_at, now()), updated_at = now()
		FROM next WHERE g.id = next.id
		RETURNING g.*`, s.cfg.UserRunningLimit, owner, db.Interval(s.cfg.Lease)).Scan(ctx, &gs)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(gs) == 0 {
		return nil, nil
	}
	return &gs[0], nil
}

// run carries one claimed job to its end: success, failure or cancel; or,
// when this worker stops or loses the lease, leaves it to another.
func (s *Service) run(ctx context.Context, owner string, g *Generation) {
	log := s.log.With("generation_id", g.ID.String(), "attempt", g.Attempts)
	switch {
	case g.CancelRequested:
		s.finish(ctx, owner, g, StatusCanceled, nil)
		return
	case g.Attempts > g.MaxAttempts:
		s.finish(ctx, owner, g, StatusFailed, apperr.Errorf("WORKER_LOST", "This job was interrupted %d times and was given up; your credits were not charged. Try again.", g.MaxAttempts))
		return
	}
	if err := s.retryTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := appendEvent(ctx, tx, g.ID, Started{Attempt: g.Attempts}); err != nil {
			return err
		}
		if err := work.SetStatusTx(ctx, tx, g.WorkID, work.StatusRunning); err != nil {
			return err
		}
		return feedStatus(ctx, tx, g, StatusRunning)
	}); err != nil {
		log.ErrorContext(ctx, "start generation", "err", err)
		if isUnavailable(err) {
			s.giveBack(context.WithoutCancel(ctx), owner, g)
		}
		return
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		s.heartbeat(runCtx, owner, g.ID, cancel)
	}()
	defer func() { cancel(nil); <-beats }()

	err := s.generate(runCtx, g)
	cause := context.Cause(runCtx)
	switch {
	case errors.Is(cause, errLeaseLost):
		log.WarnContext(ctx, "lost the lease; another worker has the job")
	case errors.Is(cause, errCanceled):
		s.finish(ctx, owner, g, StatusCanceled, nil)
	case ctx.Err() != nil:
		s.giveBack(context.WithoutCancel(ctx), owner, g)
	case isUnavailable(err):
		// The database, not the provider, failed: the job waits in the
		// queue for a moment it answers again, this attempt uncounted.
		log.WarnContext(ctx, "database unavailable; giving the job back", "err", err)
		s.giveBack(context.WithoutCancel(ctx), owner, g)
	case errors.Is(err, storage.ErrUnavailable):
		// Object storage did not take the images (or give the source) even
		// after its own retries: as with the database, the job waits in the
		// queue, this attempt uncounted, rather than fail for good.
		log.WarnContext(ctx, "storage unavailable; giving the job back", "err", err)
		s.giveBack(context.WithoutCancel(ctx), owner, g)
		// This worker waits before its next claim, so that a long outage
		// costs a try every few seconds, not a busy loop of them.
		events.WaitFor(ctx, nil, storagePause)
	case err != nil:
		var ae *apperr.Error
		if !errors.As(err, &ae) {
			log.ErrorContext(ctx, "generation failed", "err", err)
			ae = apperr.Errorf(apperr.Internal, "Something went wrong while making your images; your credits were not charged. Try again.")
		}
		s.finish(ctx, owner, g, StatusFailed, ae)
	default:
		s.finish(ctx, owner, g, StatusSucceeded, nil)
	}
}

// heartbeat renews the lease and watches for a cancel request, ending the
// run's context when either says stop.
func (s *Service) heartbeat(ctx context.Context, owner string, id uuid.UUID, stop context.CancelCauseFunc) {
	cancelWake, unsubscribe := s.bus.Subscribe(events.CancelTopic(id.String()))
	defer unsubscribe()
	t := time.NewTicker(s.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-cancelWake:
		}
		var cancelRequested []bool
		err := s.db.NewRaw(`UPDATE generations SET lease_expires_at = now() + ?::interval
			WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING cancel_requested`,
			db.Interval(s.cfg.Lease), id, owner).Scan(ctx, &cancelRequested)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WarnContext(ctx, "heartbeat failed", "generation_id", id.String(), "err", err)
		case err != nil:
			return
		case len(cancelRequested) == 0:
			stop(errLeaseLost)
			return
		case cancelRequested[0]:
			stop(errCanceled)
			return
		}
	}
}

// generate calls the provider and records its progress and outputs.
// Progress is best-effort: a progress write that fails is logged and
// skipped. Outputs are not: their writes are retried through transient
// database errors, and an output that still cannot be recorded ends the
// call with an error isUnavailable recognises.
func (s *Service) generate(ctx context.Context, g *Generation) error {
	req := provider.Request{
		Kind: g.Kind, Prompt: g.Prompt, NegativePrompt: g.NegativePrompt,
		Width: g.Width, Height: g.Height, Count: g.Count, Seed: g.Seed, Strength: g.Strength,
	}
	if g.Kind == KindEdit && g.SourceWorkID != nil {
		source := func(id uuid.UUID) (data []byte, err error) {
			err = retry(ctx, func() error {
				data, err = s.gallery.SourceImage(ctx, g.UserID, id)
				return err
			})
			return data, err
		}
		var err error
		if req.Source, err = source(*g.SourceWorkID); err != nil {
			return err
		}
		if g.MaskWorkID != nil {
			if req.Mask, err = source(*g.MaskWorkID); err != nil {
				return err
			}
		}
	}
	var (
		lastProgress time.Time
		fraction     float64
		emitErr      error
	)
	report := func(p provider.Progress) {
		if p.Total <= 0 {
			return
		}
		f := min(float64(p.Step)/float64(p.Total), 1)
		// Never backwards, and at most one event per ProgressEvery.
		if f < fraction || (time.Since(lastProgress) < s.cfg.ProgressEvery && p.Step < p.Total) {
			return
		}
		fraction, lastProgress = f, time.Now()
		data := Progress{Fraction: f, Step: p.Step, TotalSteps: p.Total, Message: p.Message}
		if len(p.Preview) > 0 {
			key, err := s.gallery.PutPreview(ctx, g.UserID, g.WorkID, p.Step, p.Preview, p.PreviewType)
			if err != nil {
				s.log.WarnContext(ctx, "store preview", "generation_id", g.ID.String(), "err", err)
			} else {
				data.PreviewKey = key
			}
		}
		err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewRaw("UPDATE generations SET progress = greatest(progress, ?) WHERE id = ?", f, g.ID).Exec(ctx); err != nil {
				return err
			}
			_, err := appendEvent(ctx, tx, g.ID, data)
			return err
		})
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "record progress; skipped", "generation_id", g.ID.String(), "err", err)
		}
	}
	emit := func(o provider.Output) error {
		var img *work.Image
		err := retry(ctx, func() (err error) {
			img, err = s.gallery.AddOutput(ctx, g.UserID, g.WorkID, o.Index, o.Data)
			return err
		})
		if err == nil {
			err = s.retryTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.NewRaw("UPDATE generations SET outputs = greatest(outputs, ?) WHERE id = ?", o.Index+1, g.ID).Exec(ctx); err != nil {
					return err
				}
				_, err := appendEvent(ctx, tx, g.ID, Output{
					Index: o.Index, ImageID: img.ID, Key: img.StorageKey, Width: img.Width, Height: img.Height, ContentType: img.ContentType,
				})
				return err
			})
		}
		if err != nil && emitErr == nil {
			emitErr = err
		}
		return err
	}
	err := s.provider.Generate(ctx, req, report, emit)
	if emitErr != nil {
		// What the provider made of emit's error matters less than the error.
		return emitErr
	}
	return err
}

// finish records the end of a job the worker still holds: it charges the
// credits of the images made (success) or releases them, marks the work,
// and writes the final event, all in one transaction, retried through
// transient database errors. When the database stays unavailable the job
// goes back to the queue; a success that cannot be recorded for any other
// reason is recorded as a failure, charging nothing, rather than left to
// run again.
func (s *Service) finish(ctx context.Context, owner string, g *Generation, status Status, failure *apperr.Error) {
	ctx = context.WithoutCancel(ctx)
	log := s.log.With("generation_id", g.ID.String())
	err := s.end(ctx, owner, g, status, failure)
	if err != nil && status == StatusSucceeded && !errors.Is(err, errLeaseLost) && !isUnavailable(err) {
		log.ErrorContext(ctx, "record success; failing the job instead", "err", err)
		err = s.end(ctx, owner, g, StatusFailed, apperr.Errorf(apperr.Internal, "Something went wrong while saving your images; your credits were not charged. Try again."))
	}
	switch {
	case err == nil:
		if derr := s.gallery.DropPreviews(ctx, g.UserID, g.WorkID); derr != nil {
			log.WarnContext(ctx, "drop previews", "err", derr)
		}
		_ = events.Ring(ctx, s.db, events.QueueTopic) // a running slot freed up
	case errors.Is(err, errLeaseLost):
	case isUnavailable(err):
		log.WarnContext(ctx, "database unavailable; giving the job back", "err", err)
		s.giveBack(ctx, owner, g)
	default:
		log.ErrorContext(ctx, "finish generation", "err", err)
	}
}

// end is finish's transaction.
func (s *Service) end(ctx context.Context, owner string, g *Generation, status Status, failure *apperr.Error) error {
	return s.retryTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var cur Generation
		err := tx.NewSelect().Model(&cur).Where("id = ? AND status = 'running' AND lease_owner = ?", g.ID, owner).For("UPDATE").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return errLeaseLost
		}
		if err != nil {
			return fmt.Errorf("lock generation: %w", err)
		}
		return s.endTx(ctx, tx, &cur, status, failure)
	})
}

// endTx moves a generation (locked by the caller) to its final status. A
// success whose hold was released meanwhile is charged from the available
// credits instead; when they no longer cover it, the job fails with
// INSUFFICIENT_CREDITS, charging nothing.
func (s *Service) endTx(ctx context.Context, tx bun.Tx, g *Generation, status Status, failure *apperr.Error) error {
	var cost int64
	if status == StatusSucceeded {
		cost = int64(g.Outputs * g.CreditsPerImage)
		if g.HoldID != nil {
			_, err := credit.ChargeTx(ctx, tx, *g.HoldID, cost)
			switch {
			case apperr.CodeOf(err) == credit.InsufficientCredits:
				status, cost = StatusFailed, 0
				failure = apperr.Errorf(credit.InsufficientCredits, "Your images were ready, but the credits set aside for them were freed and you no longer have the %d credits they cost; you were not charged. Add credits and try again.", int64(g.Outputs*g.CreditsPerImage))
			case err != nil:
				return fmt.Errorf("capture: %w", err)
			}
		}
	}
	if status != StatusSucceeded && g.HoldID != nil {
		if err := credit.ReleaseTx(ctx, tx, *g.HoldID); err != nil && apperr.CodeOf(err) != apperr.Conflict {
			return fmt.Errorf("release: %w", err)
		}
	}
	q := tx.NewUpdate().Model((*Generation)(nil)).Set("status = ?", status).Set("finished_at = now()").
		Set("lease_owner = NULL").Set("lease_expires_at = NULL").Set("updated_at = now()").Where("id = ?", g.ID)
	var final EventData = Canceled{}
	switch status {
	case StatusSucceeded:
		q = q.Set("cost = ?", cost).Set("progress = 1")
		final = Succeeded{Cost: cost, Outputs: g.Outputs}
	case StatusFailed:
		q = q.Set("error_code = ?", string(failure.Code)).Set("error_message = ?", failure.Message)
		final = Failed{Code: string(failure.Code), Message: failure.Message}
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("end generation: %w", err)
	}
	if err := work.SetStatusTx(ctx, tx, g.WorkID, status); err != nil {
		return err
	}
	if _, err := appendEvent(ctx, tx, g.ID, final); err != nil {
		return err
	}
	if s.cfg.OnEnd != nil {
		var imageIDs []uuid.UUID
		if err := tx.NewRaw(`SELECT (payload->>'imageId')::uuid FROM generation_events WHERE generation_id = ? AND kind = ? ORDER BY seq`,
			g.ID, EventOutput).Scan(ctx, &imageIDs); err != nil {
			return fmt.Errorf("read outputs: %w", err)
		}
		if err := s.cfg.OnEnd(ctx, tx, Ending{Generation: g, Status: status, ImageIDs: imageIDs, Cost: cost, Failure: failure}); err != nil {
			return err
		}
	}
	return feedStatus(ctx, tx, g, status)
}

// giveBack returns a job to the queue when its worker stops (shutdown), so
// that another takes it now rather than after the lease; the attempt does
// not count. Its work and the owner's feed go back to queued with it.
func (s *Service) giveBack(ctx context.Context, owner string, g *Generation) {
	err := s.retryTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE generations SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
			attempts = greatest(attempts - 1, 0), updated_at = now() WHERE id = ? AND lease_owner = ? AND status = 'running'`, g.ID, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // no longer ours: nothing to give back
		}
		if err := work.SetStatusTx(ctx, tx, g.WorkID, StatusQueued); err != nil {
			return err
		}
		return feedStatus(ctx, tx, g, StatusQueued)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "give back lease", "generation_id", g.ID.String(), "err", err)
		return
	}
	_ = events.Ring(ctx, s.db, events.QueueTopic)
}

func (s *Service) tx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return s.db.RunInTx(ctx, nil, fn)
}

// retryTx is tx, retried through transient database errors (see retry).
func (s *Service) retryTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return retry(ctx, func() error { return s.tx(ctx, fn) })
}

// retryTries and retryPause make retry's schedule: four tries, 0.1, 0.3
// and 0.9 s apart, enough to ride out a lost connection, a deadlock or a
// failover's first moments without holding a worker long.
const (
	retryTries = 4
	retryPause = 100 * time.Millisecond
)

// unavailable is the error of a database call that kept failing with
// transient errors (db.Transient) through every try of retry.
type unavailable struct{ err error }

func (e *unavailable) Error() string { return "database unavailable: " + e.err.Error() }
func (e *unavailable) Unwrap() error { return e.err }

// isUnavailable reports whether err comes from a database call that retry
// gave up on: a job that meets it is given back, not failed.
func isUnavailable(err error) bool {
	var u *unavailable
	return errors.As(err, &u)
}

// retry runs op, again after a pause while it fails with a transient
// database error, until it succeeds, fails otherwise, ctx ends, or the
// tries run out; then the error is an *unavailable.
func retry(ctx context.Context, op func() error) error {
	pause := retryPause
	for try := 1; ; try++ {
		err := op()
		if err == nil || !db.Transient(err) || ctx.Err() != nil {
			return err
		}
		if try == retryTries {
			return &unavailable{err}
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause *= 3
	}
}

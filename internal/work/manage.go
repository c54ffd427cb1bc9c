package work

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db"
)

// maxBatch bounds how many works one delete or restore names.
const maxBatch = 100

// Rename sets a work's title.
// Returns NOT_FOUND or VALIDATION.
func (s *Service) Rename(ctx context.Context, a actor.Actor, workID uuid.UUID, title string) (*Work, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return nil, err
	}
	title, err := normalizeTitle(title)
	if err != nil {
		return nil, err
	}
	var w Work
	err = s.db.NewUpdate().Model(&w).Set("title = ?", title).Set("updated_at = now()").
		Where("id = ? AND user_id = ? AND deleted_at IS NULL", workID, a.UserID).Returning("*").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("rename work: %w", err)
	}
	return &w, nil
}

func normalizeTitle(raw string) (string, error) {
	title := strings.TrimSpace(raw)
	if len([]rune(title)) > 200 {
		return "", apperr.Errorf(apperr.Validation, "Use a title of at most 200 characters.").With("field", "title")
	}
	for _, r := range title {
		if unicode.IsControl(r) {
			return "", apperr.Errorf(apperr.Validation, "Use a title without control characters.").With("field", "title")
		}
	}
	return title, nil
}

// Delete moves works to the bin: gone from every list at once, restorable
// until the retention window passes. All of ids or none.
// Returns NOT_FOUND when any id is not one of the user's works, and
// VALIDATION for an empty or oversized batch.
func (s *Service) Delete(ctx context.Context, a actor.Actor, ids []uuid.UUID) (restorableUntil time.Time, err error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return time.Time{}, err
	}
	ids, err = batch(ids)
	if err != nil {
		return time.Time{}, err
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*Work)(nil)).Set("deleted_at = now()").Set("updated_at = now()").
			Where("id IN (?) AND user_id = ? AND deleted_at IS NULL", bun.In(ids), a.UserID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete works: %w", err)
		}
		if n, _ := res.RowsAffected(); int(n) != len(ids) {
			return apperr.Errorf(apperr.NotFound, "Some of these works do not exist (or are already deleted); nothing was deleted.")
		}
		return nil
	})
	return s.clock.Now().Add(s.cfg.Retention), err
}

// Restore brings deleted works back from the bin. All of ids or none.
// Returns NOT_FOUND when any id is not a deleted work of the user's that is
// still within the retention window.
func (s *Service) Restore(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Work, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return nil, err
	}
	ids, err := batch(ids)
	if err != nil {
		return nil, err
	}
	var works []Work
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewRaw(`UPDATE works SET deleted_at = NULL, updated_at = now()
			WHERE id IN (?) AND user_id = ? AND deleted_at IS NOT NULL AND deleted_at > now() - ?::interval
			RETURNING *`, bun.In(ids), a.UserID, db.Interval(s.cfg.Retention)).Scan(ctx, &works); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("restore works: %w", err)
		}
		if len(works) != len(ids) {
			return apperr.Errorf(apperr.NotFound, "Some of these works are not in your bin (or were purged); nothing was restored.")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return works, nil
}

func batch(ids []uuid.UUID) ([]uuid.UUID, error) {
	seen := make(map[uuid.UUID]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(out) == 0 || len(out) > maxBatch {
		return nil, apperr.Errorf(apperr.Validation, "Name 1 to %d works at once.", maxBatch)
	}
	return out, nil
}

// Purge erases works that have been in the bin longer than the retention
// window: their blobs first, then their rows, giving their bytes back to
// the quota. It returns how many works it purged. Safe to run on several
// replicas at once: each work is claimed with SKIP LOCKED.
func (s *Service) Purge(ctx context.Context) (int, error) {
	purged := 0
	for {
		w, _, err := s.purgeOne(ctx, func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("deleted_at IS NOT NULL AND deleted_at <= now() - ?::interval", db.Interval(s.cfg.Retention))
		})
		if err != nil || w == nil {
			return purged, err
		}
		purged++
	}
}

// Purged is what one PurgeBin call erased.
type Purged struct {
	WorkIDs    []uuid.UUID
	FreedBytes int64
	// More is true when the bin still holds works that could be erased: a
	// call erases at most maxBatch, so that a bin of any size empties in
	// requests of bounded length.
	More bool
}

// PurgeBin erases works in the actor's bin now, with their blobs: those
// named by ids (1 to maxBatch), or when ids is nil the maxBatch oldest in
// the bin. A work whose generation has not ended stays: erasing it would
// take the generation, and the only record of its credit hold, with it.
// Returns NOT_FOUND when any id is not a work in the actor's bin, CONFLICT
// when one is still being made (then nothing is erased), and VALIDATION
// for an empty or oversized batch.
func (s *Service) PurgeBin(ctx context.Context, a actor.Actor, ids []uuid.UUID) (*Purged, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return nil, err
	}
	inBin := func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("?TableAlias.user_id = ? AND ?TableAlias.deleted_at IS NOT NULL", a.UserID)
	}
	where := inBin
	if ids != nil {
		var err error
		if ids, err = batch(ids); err != nil {
			return nil, err
		}
		named := func(q *bun.SelectQuery) *bun.SelectQuery { return inBin(q).Where("?TableAlias.id IN (?)", bun.In(ids)) }
		n, err := named(s.db.NewSelect().Model((*Work)(nil))).Count(ctx)
		if err != nil {
			return nil, fmt.Errorf("find works in the bin: %w", err)
		}
		if int(n) != len(ids) {
			return nil, apperr.Errorf(apperr.NotFound, "Some of these works are not in your bin; nothing was erased.")
		}
		busy, err := named(s.db.NewSelect().Model((*Work)(nil))).Where(beingMade).Exists(ctx)
		if err != nil {
			return nil, fmt.Errorf("find works being made: %w", err)
		}
		if busy {
			return nil, apperr.Errorf(apperr.Conflict, "Some of these works are still being made; cancel their generations (or let them finish) first. Nothing was erased.")
		}
		where = named
	}
	out := &Purged{}
	for len(out.WorkIDs) < maxBatch {
		w, bytes, err := s.purgeOne(ctx, where)
		if err != nil {
			return nil, err
		}
		if w == nil {
			return out, nil
		}
		out.WorkIDs, out.FreedBytes = append(out.WorkIDs, w.ID), out.FreedBytes+bytes
	}
	more, err := where(s.db.NewSelect().Model((*Work)(nil))).Where("NOT " + beingMade).Exists(ctx)
	if err != nil {
		return nil, fmt.Errorf("find more works in the bin: %w", err)
	}
	out.More = more
	return out, nil
}

// beingMade selects works whose generation has not ended.
const beingMade = "EXISTS (SELECT 1 FROM generations AS g WHERE g.work_id = ?TableAlias.id AND g.status IN ('queued', 'running'))"

// purgeOne erases the first work that where selects (oldest in the bin
// first), unless it is being made, and returns it with the bytes it freed,
// or nil when none is left.
func (s *Service) purgeOne(ctx context.Context, where func(*bun.SelectQuery) *bun.SelectQuery) (purged *Work, freed int64, err error) {
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var w Work
		err := where(tx.NewSelect().Model(&w)).Where("NOT " + beingMade).
			OrderExpr("deleted_at").Limit(1).For("UPDATE SKIP LOCKED").Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim work to purge: %w", err)
		}
		// Blobs go first: a crash after this leaves rows pointing at nothing,
		// which the next run purges again; the reverse would leak blobs.
		if _, err := s.bucket.DeletePrefix(ctx, workPrefix(w.UserID, w.ID)); err != nil {
			return fmt.Errorf("delete blobs of work %s: %w", w.ID, err)
		}
		if err := tx.NewRaw("SELECT coalesce(sum(bytes), 0) FROM assets WHERE work_id = ?", w.ID).Scan(ctx, &freed); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*Work)(nil)).Where("id = ?", w.ID).Exec(ctx); err != nil {
			return fmt.Errorf("delete work %s: %w", w.ID, err)
		}
		purged = &w
		return releaseQuota(ctx, tx, w.UserID, freed)
	})
	if err != nil {
		return nil, 0, err
	}
	return purged, freed, nil
}

// reserveQuota counts bytes against the user's quota (quota, or their
// plan's when that is more), or refuses with
// QUOTA_EXCEEDED when they would pass it. The conditional UPDATE holds the
// quota under concurrent uploads.
func reserveQuota(ctx context.Context, tx bun.Tx, userID uuid.UUID, bytes, quota int64) error {
	if _, err := tx.NewRaw("INSERT INTO storage_usage (user_id) VALUES (?) ON CONFLICT DO NOTHING", userID).Exec(ctx); err != nil {
		return fmt.Errorf("open storage usage: %w", err)
	}
	res, err := tx.NewRaw("UPDATE storage_usage SET used_bytes = used_bytes + ?0 WHERE user_id = ?1 AND used_bytes + ?0 <= "+effectiveQuota,
		bytes, userID, quota).Exec(ctx)
	if err != nil {
		return fmt.Errorf("reserve quota: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if err := tx.NewRaw("SELECT "+effectiveQuota, nil, userID, quota).Scan(ctx, &quota); err != nil {
			return fmt.Errorf("read quota: %w", err)
		}
		return quotaExceeded(quota)
	}
	return nil
}

// effectiveQuota is, in SQL, the quota of user ?1 given the default ?2: a
// plan's quota (user_limits, set by billing) raises it, never lowers it.
const effectiveQuota = "GREATEST(?2, coalesce((SELECT storage_quota_bytes FROM user_limits WHERE user_id = ?1), 0))"

func releaseQuota(ctx context.Context, tx bun.Tx, userID uuid.UUID, bytes int64) error {
	if _, err := tx.NewRaw("UPDATE storage_usage SET used_bytes = greatest(used_bytes - ?, 0) WHERE user_id = ?", bytes, userID).Exec(ctx); err != nil {
		return fmt.Errorf("release quota: %w", err)
	}
	return nil
}

func quotaExceeded(quota int64) error {
	return apperr.Errorf(QuotaExceeded, "This would pass your storage quota of %d MB. Delete some works (and empty the bin) first.", quota/(1<<20)).
		With("quotaBytes", quota)
}

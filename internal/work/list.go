package work

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/db"
)

// Filter narrows a works list.
type Filter struct {
	Kind   string // "" for any
	Status Status // "" for any
	// Query matches title or prompt, case-insensitively.
	Query string
	// InBin lists the works in the bin that can still be restored instead
	// of the others.
	InBin bool
}

// List returns up to first of owner's works (not deleted, or with
// f.InBin those in the bin that can still be restored) older than after
// (nil: the newest), newest first, with the total that match.
// Returns FORBIDDEN unless the actor is owner.
func (s *Service) List(ctx context.Context, a actor.Actor, owner uuid.UUID, f Filter, first int, after *uuid.UUID) (*db.Page[Work], error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	if err := a.OwnAccount(owner); err != nil {
		return nil, err
	}
	return db.ListPage[Work](ctx, s.db, "w.id", func(q *bun.SelectQuery) *bun.SelectQuery {
		q = q.ModelTableExpr("works AS w").ColumnExpr("w.*").Where("w.user_id = ?", owner)
		if f.InBin {
			q = q.Where("w.deleted_at IS NOT NULL AND w.deleted_at > now() - ?::interval", db.Interval(s.cfg.Retention))
		} else {
			q = q.Where("w.deleted_at IS NULL")
		}
		if f.Kind != "" {
			q = q.Where("w.kind = ?", f.Kind)
		}
		if f.Status != "" {
			q = q.Where("w.status = ?", f.Status)
		}
		if term := strings.TrimSpace(f.Query); term != "" {
			like := "%" + escapeLike(term) + "%"
			q = q.Where("(w.title ILIKE ? OR w.prompt ILIKE ?)", like, like)
		}
		return q
	}, first, after)
}

// RestorableUntil is when w leaves the bin for good; nil when w is not in
// the bin.
func (s *Service) RestorableUntil(w *Work) *time.Time {
	if w.DeletedAt == nil {
		return nil
	}
	t := w.DeletedAt.Add(s.cfg.Retention)
	return &t
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Get returns one of the actor's works (not deleted).
// Returns NOT_FOUND for a work that is not theirs, deleted or missing.
func (s *Service) Get(ctx context.Context, a actor.Actor, workID uuid.UUID) (*Work, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	return s.get(ctx, a.UserID, workID)
}

// ForGeneration returns one of the actor's works for generation: the source
// or mask of an edit, or the work a generation makes (in the answer of its
// submission, cancelation or retry). The generate scope allows it without
// works:read: it makes images from the user's prompts and works, and sees
// what it asked for.
// Returns NOT_FOUND for a work that is not theirs, deleted or missing.
func (s *Service) ForGeneration(ctx context.Context, a actor.Actor, workID uuid.UUID) (*Work, error) {
	if err := a.RequireScope(actor.ScopeGenerate); err != nil {
		return nil, err
	}
	return s.get(ctx, a.UserID, workID)
}

// get is Get for a user already authorized (internal: workers).
func (s *Service) get(ctx context.Context, userID, workID uuid.UUID) (*Work, error) {
	var w Work
	err := s.db.NewSelect().Model(&w).Where("id = ? AND user_id = ? AND deleted_at IS NULL", workID, userID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("get work: %w", err)
	}
	return &w, nil
}

// WorksByIDs returns the user's works (not deleted) among ids, in no order:
// the batch behind nested sourceWork fields and node(id:).
func (s *Service) WorksByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]Work, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	var works []Work
	if err := s.db.NewSelect().Model(&works).
		Where("id IN (?) AND user_id = ? AND deleted_at IS NULL", bun.In(ids), a.UserID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find works: %w", err)
	}
	return works, nil
}

// ImagesByWorkIDs returns the images of each work (thumbnails attached to
// the image they preview), in one query: the batch behind the images field.
func (s *Service) ImagesByWorkIDs(ctx context.Context, a actor.Actor, workIDs []uuid.UUID) (map[uuid.UUID][]*Image, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	return s.imagesByWorkIDs(ctx, a.UserID, workIDs)
}

// ImagesForGeneration is ImagesByWorkIDs for the source of an edit, which
// the generate scope allows (see ForGeneration).
func (s *Service) ImagesForGeneration(ctx context.Context, a actor.Actor, workIDs []uuid.UUID) (map[uuid.UUID][]*Image, error) {
	if err := a.RequireScope(actor.ScopeGenerate); err != nil {
		return nil, err
	}
	return s.imagesByWorkIDs(ctx, a.UserID, workIDs)
}

func (s *Service) imagesByWorkIDs(ctx context.Context, userID uuid.UUID, workIDs []uuid.UUID) (map[uuid.UUID][]*Image, error) {
	var assets []Asset
	if err := s.db.NewSelect().Model(&assets).
		Where("work_id IN (?) AND user_id = ?", bun.In(workIDs), userID).
		Order("work_id", "position", "id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	out := make(map[uuid.UUID][]*Image, len(workIDs))
	for _, img := range images(assets) {
		out[img.WorkID] = append(out[img.WorkID], img)
	}
	return out, nil
}

// ImagesByIDs returns the actor's images among ids (of works not in the
// bin), with their thumbnails, in no order: the batch behind node(id:).
func (s *Service) ImagesByIDs(ctx context.Context, a actor.Actor, ids []uuid.UUID) ([]*Image, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return nil, err
	}
	var assets []Asset
	if err := s.db.NewSelect().Model(&assets).
		Where("(id IN (?0) OR parent_id IN (?0)) AND user_id = ?1", bun.In(ids), a.UserID).
		Where("work_id IN (SELECT id FROM works WHERE user_id = ? AND deleted_at IS NULL)", a.UserID).
		Order("position", "id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("find images: %w", err)
	}
	return images(assets), nil
}

// images groups assets into images, each thumbnail attached to the image it
// previews, keeping the assets' order.
func images(assets []Asset) []*Image {
	var out []*Image
	byID := make(map[uuid.UUID]*Image)
	for i := range assets {
		if assets[i].Role == RoleThumbnail {
			continue
		}
		img := &Image{Asset: assets[i], Thumbnails: map[int]*Asset{}}
		byID[img.ID] = img
		out = append(out, img)
	}
	for i := range assets {
		a := &assets[i]
		if a.Role == RoleThumbnail {
			if parent := byID[*a.ParentID]; parent != nil {
				parent.Thumbnails[*a.ThumbSize] = a
			}
		}
	}
	return out
}

// Usage is a user's storage use against their quota.
type Usage struct {
	UsedBytes  int64
	QuotaBytes int64
}

// UsageOf returns what owner keeps in storage.
// Returns FORBIDDEN unless the actor is owner.
func (s *Service) UsageOf(ctx context.Context, a actor.Actor, owner uuid.UUID) (Usage, error) {
	if err := a.RequireScope(actor.ScopeWorksRead); err != nil {
		return Usage{}, err
	}
	if err := a.OwnAccount(owner); err != nil {
		return Usage{QuotaBytes: s.cfg.QuotaBytes}, err
	}
	return s.usage(ctx, owner)
}

// UsageAfterWrite returns the actor's storage use, for the answer of a
// write that changed it (a purge): works:write allows it.
func (s *Service) UsageAfterWrite(ctx context.Context, a actor.Actor) (Usage, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return Usage{}, err
	}
	return s.usage(ctx, a.UserID)
}

func (s *Service) usage(ctx context.Context, userID uuid.UUID) (Usage, error) {
	u := Usage{QuotaBytes: s.cfg.QuotaBytes}
	err := s.db.NewRaw("SELECT coalesce((SELECT used_bytes FROM storage_usage WHERE user_id = ?1), 0), "+effectiveQuota, nil, userID, s.cfg.QuotaBytes).
		Scan(ctx, &u.UsedBytes, &u.QuotaBytes)
	if err != nil {
		return u, fmt.Errorf("read storage usage: %w", err)
	}
	return u, nil
}

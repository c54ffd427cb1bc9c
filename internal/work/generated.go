package work

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/imaging"
	"github.com/fastimage/api/internal/storage"
)

// What generation jobs need from My Works: a work to fill, its source image,
// and a place for previews and outputs. These take the user id of a job
// whose owner was authorized when it was submitted: internal, never called
// from graph/.

// CreateTx records a new work (for a generation: pending, no images yet) in
// the caller's transaction.
func CreateTx(ctx context.Context, tx bun.Tx, w *Work) error {
	if w.ID == uuid.Nil {
		w.ID = newID()
	}
	if _, err := tx.NewInsert().Model(w).Returning("*").Exec(ctx); err != nil {
		return fmt.Errorf("insert work: %w", err)
	}
	return nil
}

// SetStatusTx moves a work to status in the caller's transaction.
func SetStatusTx(ctx context.Context, tx bun.IDB, workID uuid.UUID, status Status) error {
	if _, err := tx.NewUpdate().Model((*Work)(nil)).Set("status = ?", status).Set("updated_at = now()").
		Where("id = ?", workID).Exec(ctx); err != nil {
		return fmt.Errorf("set work status: %w", err)
	}
	return nil
}

// SourceImage returns the bytes of a work's first source or output image, for
// an edit to start from.
// Returns NOT_FOUND for a work that is not the user's or has no image.
func (s *Service) SourceImage(ctx context.Context, userID, workID uuid.UUID) ([]byte, error) {
	if _, err := s.get(ctx, userID, workID); err != nil {
		return nil, err
	}
	var a Asset
	err := s.db.NewSelect().Model(&a).Where("work_id = ? AND role IN ('source', 'output')", workID).
		OrderExpr("role = 'source' DESC, position, id").Limit(1).Scan(ctx)
	if err != nil {
		return nil, notFound()
	}
	rc, _, err := s.bucket.Open(ctx, a.StorageKey, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("open source image: %w", err)
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, s.cfg.MaxUploadBytes+1))
}

// PutPreview stores a progress preview of a work and returns its storage
// key (see KeyURL); DropPreviews deletes it when the work is finished.
func (s *Service) PutPreview(ctx context.Context, userID, workID uuid.UUID, step int, data []byte, contentType string) (string, error) {
	key := fmt.Sprintf("%spreview-%03d%s", workPrefix(userID, workID), step, extension(contentType))
	if _, err := s.bucket.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{ContentType: contentType}); err != nil {
		return "", fmt.Errorf("store preview: %w", err)
	}
	return key, nil
}

// AddOutput stores one finished image of a work (checked and stripped like
// an upload) with its thumbnails. Its storage key and row depend only on
// (work, position), so a job retried after a crash replaces what an earlier
// attempt stored instead of adding to it. Outputs count toward the quota but
// are never refused for it: the user already paid for them.
func (s *Service) AddOutput(ctx context.Context, userID, workID uuid.UUID, position int, data []byte) (*Image, error) {
	prefix := workPrefix(userID, workID)
	head := data[:min(len(data), 512)]
	contentType, err := imaging.Sniff(head)
	if err != nil {
		return nil, fmt.Errorf("provider output: %w", err)
	}
	id := uuid.NewSHA1(workID, fmt.Appendf(nil, "output-%d", position))
	key := fmt.Sprintf("%soutput-%d%s", prefix, position, extension(contentType))
	info, err := s.storeCleaned(ctx, key, contentType, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("provider output: %w", err)
	}
	out := Asset{ID: id, WorkID: workID, UserID: userID, Role: RoleOutput, Position: position, StorageKey: key,
		ContentType: info.ContentType, Bytes: info.Bytes, Width: info.Width, Height: info.Height, SHA256: info.SHA256}
	thumbs, err := s.makeThumbnails(ctx, &out, info.Orientation)
	if err != nil {
		return nil, err
	}
	for i := range thumbs {
		thumbs[i].ID = uuid.NewSHA1(id, fmt.Appendf(nil, "thumb-%d", *thumbs[i].ThumbSize))
	}
	assets := append([]Asset{out}, thumbs...)
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var replaced int64
		if err := tx.NewRaw("SELECT coalesce(sum(bytes), 0) FROM assets WHERE id = ? OR parent_id = ?", id, id).Scan(ctx, &replaced); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*Asset)(nil)).Where("id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("replace output: %w", err)
		}
		if _, err := tx.NewInsert().Model(&assets).Exec(ctx); err != nil {
			return fmt.Errorf("insert output: %w", err)
		}
		var total int64
		for _, a := range assets {
			total += a.Bytes
		}
		if err := releaseQuota(ctx, tx, userID, replaced); err != nil {
			return err
		}
		return reserveQuota(ctx, tx, userID, total, 1<<62)
	})
	if err != nil {
		return nil, err
	}
	img := &Image{Asset: out, Thumbnails: map[int]*Asset{}}
	for i := range thumbs {
		img.Thumbnails[*thumbs[i].ThumbSize] = &thumbs[i]
	}
	return img, nil
}

// DropPreviews deletes a work's progress previews once it is finished.
func (s *Service) DropPreviews(ctx context.Context, userID, workID uuid.UUID) error {
	objs, err := s.bucket.List(ctx, workPrefix(userID, workID)+"preview-")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := s.bucket.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}

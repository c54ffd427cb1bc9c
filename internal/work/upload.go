package work

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/imaging"
	"github.com/fastimage/api/internal/storage"
)

// storageUnavailable is the answer to an upload that object storage did
// not take: nothing was kept, and the same upload may work in a moment.
func storageUnavailable(cause error) error {
	return apperr.Wrap(cause, apperr.Unavailable, "Image storage is not answering just now, so your image was not saved; please try again in a moment.").
		With("retryAfter", 5)
}

// UploadInput is an image a user sends through the API.
type UploadInput struct {
	File io.Reader
	// Size is what the client declared (0 when unknown); the real size is
	// enforced while reading either way.
	Size  int64
	Title string
}

// Upload validates an image, stores a copy without its metadata and its
// thumbnails, and records it as a new work. A refused upload leaves no row
// and no blob.
// Returns UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, IMAGE_TOO_LARGE,
// INVALID_IMAGE, QUOTA_EXCEEDED or VALIDATION.
func (s *Service) Upload(ctx context.Context, a actor.Actor, in UploadInput) (*Work, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return nil, err
	}
	title, err := normalizeTitle(in.Title)
	if err != nil {
		return nil, err
	}
	if err := s.precheck(ctx, a.UserID, in.Size); err != nil {
		return nil, err
	}
	return s.ingest(ctx, a.UserID, in.File, title, nil)
}

// precheck refuses early what is sure to fail, before reading any bytes.
func (s *Service) precheck(ctx context.Context, userID uuid.UUID, declared int64) error {
	if declared > s.cfg.MaxUploadBytes {
		return tooLarge(s.cfg.MaxUploadBytes)
	}
	u, err := s.usage(ctx, userID)
	if err != nil {
		return err
	}
	if u.UsedBytes+max(declared, 1) > u.QuotaBytes {
		return quotaExceeded(u.QuotaBytes)
	}
	return nil
}

func tooLarge(limit int64) error {
	return apperr.Errorf(apperr.PayloadTooLarge, "Images may be at most %d MB.", limit/(1<<20)).With("maxBytes", limit)
}

// ingest streams src through the image checks into storage, makes the
// thumbnails, and records work, assets and quota in one transaction, in
// which claim (if not nil) runs with the new work's id once it is inserted,
// before the quota is reserved.
func (s *Service) ingest(ctx context.Context, userID uuid.UUID, src io.Reader, title string, claim func(ctx context.Context, tx bun.Tx, workID uuid.UUID) error) (w *Work, err error) {
	workID, assetID := newID(), newID()
	prefix := workPrefix(userID, workID)
	defer func() {
		if err != nil {
			// Nothing of a refused upload stays behind.
			if _, derr := s.bucket.DeletePrefix(context.WithoutCancel(ctx), prefix); derr != nil {
				err = errors.Join(err, fmt.Errorf("clean up %s: %w", prefix, derr))
			}
		}
		if errors.Is(err, storage.ErrUnavailable) && apperr.CodeOf(err) == apperr.Internal {
			err = storageUnavailable(err)
		}
	}()

	br := bufio.NewReaderSize(src, 64<<10)
	head, _ := br.Peek(512)
	contentType, err := imaging.Sniff(head)
	if err != nil {
		return nil, err
	}
	key := prefix + assetID.String() + extension(contentType)
	info, err := s.storeCleaned(ctx, key, contentType, br)
	if err != nil {
		return nil, err
	}
	original := Asset{
		ID: assetID, WorkID: workID, UserID: userID, Role: RoleSource, StorageKey: key,
		ContentType: info.ContentType, Bytes: info.Bytes, Width: info.Width, Height: info.Height, SHA256: info.SHA256,
	}
	if info.Orientation >= 5 {
		// Shown turned a quarter: the size people see is the other way round.
		original.Width, original.Height = info.Height, info.Width
	}
	thumbs, err := s.makeThumbnails(ctx, &original, info.Orientation)
	if err != nil {
		return nil, err
	}

	w = &Work{ID: workID, UserID: userID, Kind: KindUpload, Title: title, Status: StatusSucceeded}
	total := original.Bytes
	for _, t := range thumbs {
		total += t.Bytes
	}
	assets := append([]Asset{original}, thumbs...)
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(w).Returning("*").Exec(ctx); err != nil {
			return fmt.Errorf("insert work: %w", err)
		}
		if _, err := tx.NewInsert().Model(&assets).Exec(ctx); err != nil {
			return fmt.Errorf("insert assets: %w", err)
		}
		if claim != nil {
			if err := claim(ctx, tx, workID); err != nil {
				return err
			}
		}
		return reserveQuota(ctx, tx, userID, total, s.cfg.QuotaBytes)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// storeCleaned pipes r through imaging.Process (validation and metadata
// stripping) straight into the bucket: the upload is read once and never
// held in memory whole.
func (s *Service) storeCleaned(ctx context.Context, key, contentType string, r io.Reader) (imaging.Info, error) {
	pr, pw := io.Pipe()
	type result struct {
		info imaging.Info
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := imaging.Process(r, pw, s.imageLimits())
		pw.CloseWithError(err) // nil: the reader sees EOF
		done <- result{info, err}
	}()
	_, putErr := s.bucket.Put(ctx, key, pr, storage.PutOptions{ContentType: contentType, CacheControl: "private, max-age=31536000, immutable"})
	pr.CloseWithError(errors.Join(putErr, io.ErrClosedPipe)) // unblocks the processor if Put gave up
	res := <-done
	if res.err != nil {
		return imaging.Info{}, res.err
	}
	if putErr != nil {
		return imaging.Info{}, fmt.Errorf("store %s: %w", key, putErr)
	}
	return res.info, nil
}

// makeThumbnails decodes the stored original once and stores an upright
// preview (per its EXIF orientation) at each configured size beside it.
func (s *Service) makeThumbnails(ctx context.Context, original *Asset, orientation int) ([]Asset, error) {
	thumbs, err := s.thumbnails(ctx, original.StorageKey, orientation)
	if err != nil {
		return nil, err
	}
	out := make([]Asset, 0, len(thumbs))
	dir := path.Dir(original.StorageKey) + "/"
	for i, t := range thumbs {
		size := s.cfg.ThumbnailSizes[i]
		a := Asset{
			ID: newID(), WorkID: original.WorkID, UserID: original.UserID, Role: RoleThumbnail,
			ParentID: &original.ID, ThumbSize: &size, ContentType: t.ContentType,
			Bytes: int64(len(t.Data)), Width: t.Width, Height: t.Height, SHA256: sha256Hex(t.Data),
		}
		a.StorageKey = fmt.Sprintf("%s%s-%d%s", dir, original.ID, size, extension(t.ContentType))
		if _, err := s.bucket.Put(ctx, a.StorageKey, bytes.NewReader(t.Data), storage.PutOptions{ContentType: t.ContentType, CacheControl: "private, max-age=31536000, immutable"}); err != nil {
			return nil, fmt.Errorf("store thumbnail: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// thumbnails decodes the image at key and returns its previews. It waits
// its turn among the MaxConcurrentDecodes decodes first, so that at most
// that many decoded images are in memory at once, and returns ctx's error if
// ctx ends while it waits.
func (s *Service) thumbnails(ctx context.Context, key string, orientation int) ([]imaging.Thumb, error) {
	select {
	case s.decodes <- struct{}{}:
		defer func() { <-s.decodes }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rc, _, err := s.bucket.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("open original: %w", err)
	}
	defer rc.Close()
	return imaging.OrientedThumbnails(rc, orientation, s.imageLimits(), s.cfg.ThumbnailSizes...)
}

func extension(contentType string) string {
	switch contentType {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/webp":
		return ".webp"
	default:
		return ""
	}
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// Upload sessions: a direct PUT to storage for big files, then completeUpload.

type upload struct {
	bun.BaseModel `bun:"table:uploads"`

	ID            uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID        uuid.UUID  `bun:"user_id,type:uuid"`
	Filename      string     `bun:"filename"`
	ContentType   string     `bun:"content_type"`
	DeclaredBytes int64      `bun:"declared_bytes"`
	Title         string     `bun:"title"`
	StagingKey    string     `bun:"staging_key"`
	WorkID        *uuid.UUID `bun:"work_id,type:uuid"`
	ExpiresAt     time.Time  `bun:"expires_at"`
	CompletedAt   *time.Time `bun:"completed_at"`
	CreatedAt     time.Time  `bun:"created_at,nullzero,default:now()"`
}

// DirectUpload is where a client PUTs a big file.
type DirectUpload struct {
	ID          uuid.UUID
	URL         string
	ContentType string
	ExpiresAt   time.Time
}

// CreateUpload opens a direct upload: a signed URL that accepts one PUT of
// the file with the given content type and at most size bytes. Until the
// upload is completed, or forgotten by CleanStaleUploads, size counts
// against the user's quota, so that open uploads cannot stage more than it.
// Returns UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE, QUOTA_EXCEEDED or
// VALIDATION.
func (s *Service) CreateUpload(ctx context.Context, a actor.Actor, filename, contentType string, size int64, title string) (*DirectUpload, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return nil, err
	}
	title, err := normalizeTitle(title)
	if err != nil {
		return nil, err
	}
	contentType = strings.ToLower(strings.TrimSpace(contentType))
	if extension(contentType) == "" {
		return nil, apperr.Errorf(imaging.UnsupportedMediaType, "Upload a PNG, JPEG or WebP image (image/png, image/jpeg or image/webp).")
	}
	if size <= 0 {
		return nil, apperr.Errorf(apperr.Validation, "Give the file's size in bytes.").With("field", "bytes")
	}
	if err := s.precheck(ctx, a.UserID, size); err != nil {
		return nil, err
	}
	filename = strings.TrimSpace(filename)
	if len(filename) > 255 {
		filename = filename[:255]
	}
	id := newID()
	u := &upload{
		ID: id, UserID: a.UserID, Filename: filename, ContentType: contentType, DeclaredBytes: size, Title: title,
		StagingKey: stagingKey(a.UserID, id),
		ExpiresAt:  s.clock.Now().Add(s.cfg.UploadURLTTL),
	}
	url, err := s.bucket.SignedURL(ctx, u.StagingKey, storage.SignOptions{Method: http.MethodPut, Expires: u.ExpiresAt, ContentType: contentType, Size: size})
	if err != nil {
		return nil, fmt.Errorf("sign upload URL: %w", err)
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := reserveQuota(ctx, tx, a.UserID, size, s.cfg.QuotaBytes); err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(u).Exec(ctx); err != nil {
			return fmt.Errorf("record upload: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &DirectUpload{ID: id, URL: url, ContentType: contentType, ExpiresAt: u.ExpiresAt}, nil
}

// stagingKey is where the file of a direct upload is PUT.
func stagingKey(userID, uploadID uuid.UUID) string {
	return storage.UserPrefix(userID) + "uploads/" + uploadID.String()
}

// AcceptsPut is the storage.local PutGuard of direct uploads: a PUT to key
// may store something only while key is the staging key of an upload that
// is open (not completed, not expired). Once an upload is completed its URL
// is void, so nothing can be left at it that the quota does not count.
// Returns FORBIDDEN otherwise.
func (s *Service) AcceptsPut(ctx context.Context, key string) error {
	closed := apperr.Errorf(apperr.Forbidden, "This upload link is no longer open: its upload was completed or has expired. Start a new one with createUpload.")
	rest, ok := strings.CutPrefix(key, "users/")
	if !ok {
		return closed
	}
	user, id, ok := strings.Cut(rest, "/uploads/")
	userID, uerr := uuid.Parse(user)
	uploadID, ierr := uuid.Parse(id)
	if !ok || uerr != nil || ierr != nil || key != stagingKey(userID, uploadID) {
		return closed
	}
	open, err := s.db.NewSelect().Model((*upload)(nil)).
		Where("id = ? AND user_id = ? AND completed_at IS NULL AND expires_at > ?", uploadID, userID, s.clock.Now()).Exists(ctx)
	if err != nil {
		return fmt.Errorf("find upload: %w", err)
	}
	if !open {
		return closed
	}
	return nil
}

// errUploadTaken means another completion of the same upload committed
// first.
var errUploadTaken = errors.New("upload completed concurrently")

// CompleteUpload validates what arrived at a direct upload's URL exactly as
// Upload does and records the work; the staged file is removed either way.
// The work takes the place of the upload's reservation in the quota, and
// the upload's URL stops accepting PUTs. Completing twice returns the same
// work.
// Returns NOT_FOUND, VALIDATION (nothing arrived), PAYLOAD_TOO_LARGE (more
// arrived than was declared), and Upload's codes.
func (s *Service) CompleteUpload(ctx context.Context, a actor.Actor, uploadID uuid.UUID) (*Work, error) {
	if err := a.RequireScope(actor.ScopeWorksWrite); err != nil {
		return nil, err
	}
	var u upload
	err := s.db.NewSelect().Model(&u).Where("id = ? AND user_id = ?", uploadID, a.UserID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.Errorf(apperr.NotFound, "No such upload.")
	}
	if err != nil {
		return nil, fmt.Errorf("find upload: %w", err)
	}
	if u.CompletedAt != nil && u.WorkID != nil {
		return s.Get(ctx, a, *u.WorkID)
	}
	info, err := s.bucket.Stat(ctx, u.StagingKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apperr.Errorf(apperr.Validation, "Nothing has been uploaded to this upload's URL yet; PUT the file there first.")
	}
	if err != nil {
		return nil, fmt.Errorf("stat upload: %w", err)
	}
	defer func() { _ = s.bucket.Delete(context.WithoutCancel(ctx), u.StagingKey) }()
	if info.Size > u.DeclaredBytes {
		return nil, apperr.Errorf(apperr.PayloadTooLarge,
			"The file uploaded is %d bytes, more than the %d given to createUpload. Start a new upload with the file's real size.", info.Size, u.DeclaredBytes).
			With("maxBytes", u.DeclaredBytes)
	}
	if info.Size > s.cfg.MaxUploadBytes {
		return nil, tooLarge(s.cfg.MaxUploadBytes)
	}
	rc, _, err := s.bucket.Open(ctx, u.StagingKey, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("open upload: %w", err)
	}
	defer rc.Close()
	w, err := s.ingest(ctx, a.UserID, rc, u.Title, func(ctx context.Context, tx bun.Tx, workID uuid.UUID) error {
		res, err := tx.NewUpdate().Model((*upload)(nil)).Set("completed_at = now()").Set("work_id = ?", workID).
			Where("id = ? AND completed_at IS NULL", u.ID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("complete upload: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errUploadTaken
		}
		return releaseQuota(ctx, tx, u.UserID, u.DeclaredBytes)
	})
	if errors.Is(err, errUploadTaken) {
		// A concurrent completion won; return its work, not a duplicate.
		return s.CompleteUpload(ctx, a, uploadID)
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

// CleanStaleUploads forgets direct uploads a day after their URL expired,
// with whatever was PUT for them: those never completed give their
// reservation back to the quota; for completed ones, it deletes anything
// PUT after completion that a backend could not refuse (GCS honours a
// signed URL until it expires).
func (s *Service) CleanStaleUploads(ctx context.Context) (int, error) {
	var stale []upload
	if err := s.db.NewSelect().Model(&stale).
		Where("expires_at < now() - interval '1 day'").OrderExpr("expires_at").Limit(500).Scan(ctx); err != nil {
		return 0, fmt.Errorf("find stale uploads: %w", err)
	}
	for _, u := range stale {
		if err := s.bucket.Delete(ctx, u.StagingKey); err != nil {
			return 0, fmt.Errorf("delete staged upload: %w", err)
		}
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var open bool
			err := tx.NewDelete().Model((*upload)(nil)).Where("id = ?", u.ID).
				Returning("completed_at IS NULL").Scan(ctx, &open)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return nil // another replica forgot it first
			case err != nil:
				return fmt.Errorf("forget upload: %w", err)
			case open:
				return releaseQuota(ctx, tx, u.UserID, u.DeclaredBytes)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return len(stale), nil
}

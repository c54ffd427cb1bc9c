package privacy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/storage"
)

// ExportExpired: the export was deleted when its time ran out (410).
const ExportExpired apperr.Code = "EXPORT_EXPIRED"

// ExportPath is where exports are downloaded: ExportPath + "{request id}".
const ExportPath = "/privacy/exports/"

// ExportLink is a finished export as its owner sees it.
type ExportLink struct {
	Bytes     int64
	SHA256    string
	ExpiresAt time.Time
	// URL downloads the ZIP until ExpiresAt; each download is recorded.
	URL string
}

// ExportLink returns the download of r for the actor, or nil: only its
// owner sees it, and only once it is complete and until it expires.
func (s *Service) ExportLink(a actor.Actor, r *Request) *ExportLink {
	now := s.clock.Now()
	if r.Kind != KindExport || r.Status != StatusCompleted || a.UserID != r.UserID ||
		r.ResultKey == nil || r.ResultBytes == nil || r.ResultSHA256 == nil || r.ResultExpiresAt == nil ||
		!now.Before(*r.ResultExpiresAt) {
		return nil
	}
	expires := r.ResultExpiresAt.Truncate(time.Second)
	if limit := now.Add(MaxExportTTL); expires.After(limit) {
		expires = limit.Truncate(time.Second)
	}
	u := strings.TrimRight(s.cfg.PublicURL.String(), "/") + ExportPath + r.ID.String() + "?token=" + s.exportToken(r.ID, r.UserID, expires)
	return &ExportLink{Bytes: *r.ResultBytes, SHA256: *r.ResultSHA256, ExpiresAt: *r.ResultExpiresAt, URL: u}
}

// exportToken is "<expiry, unix seconds>.<HMAC of the request, its user
// and the expiry>": it proves the link was handed to the request's owner.
func (s *Service) exportToken(requestID, userID uuid.UUID, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(s.exportMAC(requestID, userID, exp))
}

func (s *Service) exportMAC(requestID, userID uuid.UUID, exp string) []byte {
	m := hmac.New(sha256.New, s.cfg.LinkKey)
	m.Write([]byte("fastimage export download\x00" + requestID.String() + "\x00" + userID.String() + "\x00" + exp))
	return m.Sum(nil)
}

// ExportDownloadHandler serves GET ExportPath{id}?token=…: it checks the
// token, records the download (with the client's IP and user agent from
// account.ClientFrom) and streams the ZIP. A token that does not fit the
// request, or a request that does not exist, gets the same 404; an
// expired export gets 410 EXPORT_EXPIRED.
func (s *Service) ExportDownloadHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.download(w, r); err != nil {
			code, status := apperr.CodeOf(err), http.StatusInternalServerError
			switch code {
			case apperr.NotFound:
				status = http.StatusNotFound
			case ExportExpired:
				status = http.StatusGone
			default:
				s.log.ErrorContext(r.Context(), "export download", "err", err)
				err = apperr.Errorf(apperr.Internal, "The export could not be read just now; try the link again in a minute.")
				code = apperr.Internal
			}
			apperr.WriteHTTP(w, status, code, err.Error())
		}
	})
}

var errNoSuchExport = apperr.Errorf(apperr.NotFound,
	"There is no export at this link: it may be cut short or not yours. Open the download link from your privacy requests again.")

func (s *Service) download(w http.ResponseWriter, hr *http.Request) error {
	ctx := hr.Context()
	id, err := uuid.Parse(hr.PathValue("id"))
	if err != nil {
		return errNoSuchExport
	}
	exp, mac, ok := strings.Cut(hr.URL.Query().Get("token"), ".")
	gotMAC, err := base64.RawURLEncoding.DecodeString(mac)
	if !ok || err != nil {
		return errNoSuchExport
	}
	expUnix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return errNoSuchExport
	}
	var r Request
	if err := s.db.NewSelect().Model(&r).Where("id = ? AND kind = ?", id, KindExport).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return errNoSuchExport
		}
		return fmt.Errorf("find export: %w", err)
	}
	if !hmac.Equal(gotMAC, s.exportMAC(r.ID, r.UserID, exp)) {
		return errNoSuchExport
	}
	now := s.clock.Now()
	if r.Status != StatusCompleted {
		return errNoSuchExport // a link is only ever made for a completed export
	}
	expiredAt := time.Unix(expUnix, 0)
	if r.ResultExpiresAt != nil && r.ResultExpiresAt.Before(expiredAt) {
		expiredAt = *r.ResultExpiresAt
	}
	if r.ResultKey == nil || !now.Before(expiredAt) {
		return expired(expiredAt)
	}
	blob, info, err := s.cfg.Bucket.Open(ctx, *r.ResultKey, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return expired(expiredAt) // purged a moment ago
	}
	if err != nil {
		return fmt.Errorf("open export: %w", err)
	}
	defer blob.Close()
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="fastimage-export-%s.zip"`, r.CreatedAt.UTC().Format("2006-01-02")))
	h.Set("Cache-Control", "private, no-store")
	h.Set("Referrer-Policy", "no-referrer") // the token is in the URL
	h.Set("X-Content-Type-Options", "nosniff")
	if r.ResultSHA256 != nil {
		h.Set("X-Checksum-Sha256", *r.ResultSHA256)
	}
	if hr.Method == http.MethodHead {
		return nil
	}
	if err := s.recordDownload(ctx, &r); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, blob); err != nil {
		s.log.WarnContext(ctx, "export download cut short", "request", r.ID, "err", err)
	}
	return nil
}

func expired(at time.Time) error {
	return apperr.Errorf(ExportExpired,
		"This export expired on %s UTC and was deleted; ask for a new one with requestDataExport.", at.UTC().Format("2 January 2006 15:04"))
}

// recordDownload keeps who downloaded r's export, before a byte is sent.
func (s *Service) recordDownload(ctx context.Context, r *Request) error {
	c := account.ClientFrom(ctx)
	if _, err := s.db.NewRaw("INSERT INTO export_downloads (request_id, user_id, ip, user_agent) VALUES (?, ?, ?, ?)",
		r.ID, r.UserID, c.IP, c.UserAgent).Exec(ctx); err != nil {
		return fmt.Errorf("record download: %w", err)
	}
	return nil
}

// PurgeExpiredExports deletes the ZIPs of exports whose time ran out and
// clears their result, with a step in each audit trail; it returns how
// many it purged. Safe to repeat and to run on several replicas at once.
func (s *Service) PurgeExpiredExports(ctx context.Context) (int, error) {
	if s.cfg.Bucket == nil {
		return 0, nil
	}
	purged := 0
	for {
		var due []struct {
			ID        uuid.UUID `bun:"id"`
			ResultKey string    `bun:"result_key"`
		}
		if err := s.db.NewRaw(`SELECT id, result_key FROM privacy_requests
			WHERE kind = 'export' AND result_key IS NOT NULL AND result_expires_at <= ?
			ORDER BY result_expires_at, id LIMIT 100`, s.clock.Now()).Scan(ctx, &due); err != nil {
			return purged, fmt.Errorf("find expired exports: %w", err)
		}
		for _, d := range due {
			// The blob goes first: a row cleared over a blob left behind
			// would never be looked at again.
			if err := s.cfg.Bucket.Delete(ctx, d.ResultKey); err != nil {
				return purged, fmt.Errorf("delete export %s: %w", d.ID, err)
			}
			cleared := false
			err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				res, err := tx.NewRaw(`UPDATE privacy_requests SET result_key = NULL, result_bytes = NULL, result_sha256 = NULL,
					result_expires_at = NULL, updated_at = now() WHERE id = ? AND result_key = ?`, d.ID, d.ResultKey).Exec(ctx)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 0 {
					return nil // another replica purged it
				}
				cleared = true
				return audit(ctx, tx, d.ID, "export deleted", System, "its download period ended")
			})
			if err != nil {
				return purged, fmt.Errorf("clear export %s: %w", d.ID, err)
			}
			if cleared {
				purged++
			}
		}
		if len(due) < 100 {
			return purged, nil
		}
	}
}

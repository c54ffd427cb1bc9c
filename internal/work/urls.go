package work

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/fastimage/api/internal/storage"
)

// urlWindow is the step signed URLs' expiry is rounded up to: reads within
// one window get the same URL, which browsers and CDNs can cache.
const urlWindow = 15 * time.Minute

// URLExpiry is when URLs signed now expire: at least URLTTL from now,
// rounded up to the next window.
func (s *Service) URLExpiry(now time.Time) time.Time {
	return now.Add(s.cfg.URLTTL).Truncate(urlWindow).Add(urlWindow)
}

// URL returns a signed GET URL of an asset that works until expires. Callers
// have already checked that the asset is the viewer's.
func (s *Service) URL(ctx context.Context, a *Asset, expires time.Time) (string, error) {
	u, err := s.bucket.SignedURL(ctx, a.StorageKey, storage.SignOptions{Method: http.MethodGet, Expires: expires})
	if err != nil {
		return "", fmt.Errorf("sign URL of asset %s: %w", a.ID, err)
	}
	return u, nil
}

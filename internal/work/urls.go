package work

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/fastimage/api/internal/storage"
)

// urlWindow is the step signed URLs' expiry is rounded up to: reads within
// one window get the same URL, which browsers and CDNs can cache.
const urlWindow = 15 * time.Minute

// maxCachedURLs bounds the signed-URL cache.
const maxCachedURLs = 50_000

// URLExpiry is when URLs signed now, by the service's clock, expire: at
// least URLTTL from now, rounded up to the next window.
func (s *Service) URLExpiry() time.Time {
	return s.clock.Now().Add(s.cfg.URLTTL).Truncate(urlWindow).Add(urlWindow)
}

// URL returns a signed GET URL of an asset that works until expires. Callers
// have already checked that the asset is the viewer's.
func (s *Service) URL(ctx context.Context, a *Asset, expires time.Time) (string, error) {
	u, err := s.KeyURL(ctx, a.StorageKey, expires)
	if err != nil {
		return "", fmt.Errorf("sign URL of asset %s: %w", a.ID, err)
	}
	return u, nil
}

// KeyURL returns a signed GET URL of the blob at key that works until
// expires. It is for keys this service recorded itself (assets, event
// payloads), never for a key a client sent. URLs are signed when they are
// delivered and cached per expiry window, so a thousand subscribers of one
// generation cost one signature (with GCS through IAM, one network call).
func (s *Service) KeyURL(ctx context.Context, key string, expires time.Time) (string, error) {
	return s.urls.get(key, expires, func() (string, error) {
		return s.bucket.SignedURL(ctx, key, storage.SignOptions{Method: http.MethodGet, Expires: expires})
	})
}

// urlCache remembers the URLs signed for one expiry: the current window's.
// Moving to a new window drops the old one whole; past maxCachedURLs it
// starts afresh, so it never grows without bound.
type urlCache struct {
	mu      sync.Mutex
	expires time.Time
	urls    map[string]string
}

func (c *urlCache) get(key string, expires time.Time, sign func() (string, error)) (string, error) {
	c.mu.Lock()
	if u, ok := c.urls[key]; ok && c.expires.Equal(expires) {
		c.mu.Unlock()
		return u, nil
	}
	c.mu.Unlock()
	u, err := sign()
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.expires.Equal(expires) || len(c.urls) >= maxCachedURLs {
		if expires.Before(c.expires) {
			return u, nil // an older window's URL: not worth keeping
		}
		c.expires, c.urls = expires, make(map[string]string)
	}
	c.urls[key] = u
	return u, nil
}

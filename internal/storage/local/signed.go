package local

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/storage"
)

// maxLifetime is the longest a signed URL may live: GCS's limit, so that
// code that works against the local bucket works against GCS.
const maxLifetime = 7 * 24 * time.Hour

// signatureDomain starts every signed message, so that a MAC made with the
// same key for another purpose can never pass for a URL signature, and so
// that the format can change without old signatures matching new rules.
const signatureDomain = "fastimage-local-storage-v1"

// SignedURL returns BaseURL/<key>?X-Method=…&X-Expires=…[&X-Content-Type=…][&X-Size=…]&X-Signature=…,
// which Handler serves until opts.Expires (to the second, rounded down).
// Method must be GET (which also allows HEAD) or PUT, which needs the
// ContentType the upload must carry; a PUT with a Size accepts no body
// larger than that. Expires must be set and at most 7 days ahead.
func (b *Bucket) SignedURL(ctx context.Context, key string, opts storage.SignOptions) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !storage.ValidKey(key) {
		return "", fmt.Errorf("local storage: invalid key %q", key)
	}
	q := url.Values{}
	switch opts.Method {
	case http.MethodGet:
	case http.MethodPut:
		if opts.ContentType == "" || strings.ContainsFunc(opts.ContentType, isControl) {
			return "", fmt.Errorf("local storage: a signed PUT needs a content type, got %q", opts.ContentType)
		}
		q.Set("X-Content-Type", opts.ContentType)
		if opts.Size < 0 {
			return "", fmt.Errorf("local storage: a signed PUT cannot have size %d", opts.Size)
		}
		if opts.Size > 0 {
			q.Set("X-Size", strconv.FormatInt(opts.Size, 10))
		}
	default:
		return "", fmt.Errorf("local storage: cannot sign method %q, only GET and PUT", opts.Method)
	}
	if opts.Expires.IsZero() || opts.Expires.After(b.now().Add(maxLifetime)) {
		return "", fmt.Errorf("local storage: expiry %v is not within %v from now", opts.Expires, maxLifetime)
	}
	expires := strconv.FormatInt(opts.Expires.Unix(), 10)
	q.Set("X-Method", opts.Method)
	q.Set("X-Expires", expires)
	q.Set("X-Signature", base64.RawURLEncoding.EncodeToString(b.sign(opts.Method, key, expires, q.Get("X-Content-Type"), q.Get("X-Size"))))
	return b.baseURL + "/" + escapeKey(key) + "?" + q.Encode(), nil
}

// sign returns the HMAC-SHA256 of what a URL allows. The fields are joined
// by newlines, which none of them can contain: the method is GET or PUT,
// keys and content types have no control characters, expiries and sizes are
// digits. A URL without a size signs the message it did before sizes were
// signed.
func (b *Bucket) sign(method, key, expires, contentType, size string) []byte {
	mac := hmac.New(sha256.New, b.signingKey)
	msg := signatureDomain + "\n" + method + "\n" + key + "\n" + expires + "\n" + contentType
	if size != "" {
		msg += "\n" + size
	}
	io.WriteString(mac, msg)
	return mac.Sum(nil)
}

// grant is what a verified signed URL allows.
type grant struct {
	contentType string
	expires     time.Time
	// size is the largest body a PUT may have; 0 when the URL sets none.
	size int64
}

// verify checks that q signs a request of method for key and has not
// expired. Returns Forbidden otherwise.
func (b *Bucket) verify(method, key string, q url.Values) (grant, *apperr.Error) {
	signedMethod, expires, ct, size := q.Get("X-Method"), q.Get("X-Expires"), q.Get("X-Content-Type"), q.Get("X-Size")
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("X-Signature"))
	if err != nil || !hmac.Equal(sig, b.sign(signedMethod, key, expires, ct, size)) {
		return grant{}, apperr.Errorf(apperr.Forbidden, "This link is not valid.")
	}
	unix, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return grant{}, apperr.Errorf(apperr.Forbidden, "This link is not valid.")
	}
	if method != signedMethod && !(method == http.MethodHead && signedMethod == http.MethodGet) {
		return grant{}, apperr.Errorf(apperr.Forbidden, "This link does not allow %s.", method)
	}
	g := grant{contentType: ct, expires: time.Unix(unix, 0)}
	if size != "" {
		if g.size, err = strconv.ParseInt(size, 10, 64); err != nil || g.size <= 0 {
			return grant{}, apperr.Errorf(apperr.Forbidden, "This link is not valid.")
		}
	}
	if !b.now().Before(g.expires) {
		return grant{}, apperr.Errorf(apperr.Forbidden, "This link has expired.")
	}
	return g, nil
}

// escapeKey escapes each segment of key for a URL path, keeping the
// slashes between them.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f
}

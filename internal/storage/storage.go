// Package storage keeps blobs (uploaded and generated images, thumbnails,
// exports) in a bucket: Google Cloud Storage in production, a local folder by
// default. Objects are laid out under a per-user prefix, UserPrefix, so that
// everything a user owns can be listed and erased.
package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ErrNotFound is returned (wrapped) for a key with no object.
var ErrNotFound = errors.New("storage: object not found")

// ErrUnavailable is returned (wrapped) when the store did not answer, or
// answered that it cannot serve now (a timeout, 429, a 5xx), after the
// implementation's own retries: the same call may well work in a moment,
// so callers give the work back or tell the user to try again rather than
// fail it for good.
var ErrUnavailable = errors.New("storage: unavailable")

// Bucket stores blobs by key. Implementations stream: no method holds a
// whole object in memory.
type Bucket interface {
	// Put stores r under key, replacing any object there, and returns what
	// was stored.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error)
	// Open reads length bytes of the object from offset (length < 0: to the
	// end). Returns ErrNotFound for a missing key.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error)
	// Stat describes the object. Returns ErrNotFound for a missing key.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// DeletePrefix removes every object whose key starts with prefix and
	// returns how many it removed.
	DeletePrefix(ctx context.Context, prefix string) (int, error)
	// List describes every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// SignedURL returns a URL that lets its holder GET or PUT the object
	// until opts.Expires, without credentials.
	SignedURL(ctx context.Context, key string, opts SignOptions) (string, error)
	// Name says which implementation this is ("gcs" or "local").
	Name() string
}

// PutOptions describe an object being stored.
type PutOptions struct {
	ContentType  string
	CacheControl string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key         string
	Size        int64
	ContentType string
	ETag        string
	Updated     time.Time
}

// SignOptions say what a signed URL allows.
type SignOptions struct {
	// Method is "GET" or "PUT".
	Method string
	// Expires is when the URL stops working.
	Expires time.Time
	// ContentType, for PUT, is the Content-Type the upload must carry; for
	// GET it is ignored.
	ContentType string
	// Size, for PUT, is the size the client declared for the body, which
	// the URL then holds it to: the local backend refuses a larger body,
	// GCS signs it as the Content-Length header (so the body must be
	// exactly that long). Zero leaves only the backend's own cap.
	Size int64
}

// UserPrefix is the prefix under which every object of a user lives.
func UserPrefix(userID uuid.UUID) string {
	return "users/" + userID.String() + "/"
}

// ValidKey reports whether key is a well-formed object key: relative,
// slash-separated, without empty, "." or ".." segments or control
// characters, and at most 1024 bytes.
func ValidKey(key string) bool {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return false
		}
	}
	return true
}

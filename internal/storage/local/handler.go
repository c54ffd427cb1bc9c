package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/storage"
)

// Handler serves the URLs SignedURL makes. Mount it at BaseURL's path with a
// trailing slash, e.g. mux.Handle("/blobs/", b.Handler()); it takes the key
// from the request path after that prefix itself, so no http.StripPrefix.
//
// GET and HEAD serve the object (ranges and conditional requests included)
// with Cache-Control private for the rest of the URL's life. PUT streams
// the body into the object; its Content-Type must be the signed one and its
// size at most the signed size and MaxPutBytes (413 beyond, and nothing is
// stored). A bad, expired or tampered URL gets 403, a missing object 404
// and other methods 405, each with a GraphQL-shaped JSON error body.
func (b *Bucket) Handler() http.Handler {
	return b.HandlerAccepting(nil)
}

// PutGuard decides whether a signed PUT to key may still store anything:
// nil if it may, an *apperr.Error (answered with 403 and its code) if its
// purpose is over, any other error for a failure.
type PutGuard func(ctx context.Context, key string) error

// HandlerAccepting is Handler with a guard that every PUT must pass, before
// its body is read and again once it is stored (a refusal then deletes
// it): a signed URL works until it expires, but what it was made for can
// end sooner, e.g. an upload that has been completed.
func (b *Bucket) HandlerAccepting(accept PutGuard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.serve(w, r, accept) })
}

func (b *Bucket) serve(w http.ResponseWriter, r *http.Request, accept PutGuard) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		apperr.WriteHTTP(w, http.StatusMethodNotAllowed, apperr.BadRequest, "Signed links accept only GET, HEAD and PUT.")
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, b.basePath)
	if !ok {
		apperr.WriteHTTP(w, http.StatusNotFound, apperr.NotFound, "Nothing is stored at this link.")
		return
	}
	g, aerr := b.verify(r.Method, key, r.URL.Query())
	if aerr != nil {
		apperr.WriteHTTP(w, http.StatusForbidden, aerr.Code, aerr.Message)
		return
	}
	if !storage.ValidKey(key) {
		// Only reachable with our own signature over a bad key, which
		// SignedURL never makes; refuse all the same.
		apperr.WriteHTTP(w, http.StatusNotFound, apperr.NotFound, "Nothing is stored at this link.")
		return
	}
	if r.Method == http.MethodPut {
		b.serveUpload(w, r, key, g, accept)
		return
	}
	b.serveDownload(w, r, key, g)
}

func (b *Bucket) serveDownload(w http.ResponseWriter, r *http.Request, key string, g grant) {
	f, info, err := b.open(key)
	if errors.Is(err, storage.ErrNotFound) {
		apperr.WriteHTTP(w, http.StatusNotFound, apperr.NotFound, "Nothing is stored at this link.")
		return
	}
	if err != nil {
		b.fail(w, r, key, err)
		return
	}
	defer f.Close()

	h := w.Header()
	h.Set("Content-Type", info.ContentType)
	h.Set("ETag", info.ETag)
	// A browser may keep the object as long as the URL would fetch it again,
	// and no longer: after that the holder has to ask for a new URL.
	h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int64(max(g.expires.Sub(b.now()), 0)/time.Second)))
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Content-Type-Options", "nosniff")
	// Blobs are served from the API's own origin; should one ever be HTML or
	// SVG, it must not run script there.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", info.Updated, f)
}

func (b *Bucket) serveUpload(w http.ResponseWriter, r *http.Request, key string, g grant, accept PutGuard) {
	if got := r.Header.Get("Content-Type"); got != g.contentType {
		apperr.WriteHTTP(w, http.StatusForbidden, apperr.Forbidden, fmt.Sprintf("This link accepts only uploads of type %s.", g.contentType))
		return
	}
	limit := b.maxPutBytes
	if g.size > 0 {
		limit = min(limit, g.size)
	}
	if r.ContentLength > limit {
		b.tooLarge(w, limit, g.size > 0)
		return
	}
	if !b.accepts(w, r, key, accept) {
		return
	}
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, limit)}
	info, err := b.Put(r.Context(), key, body, storage.PutOptions{ContentType: g.contentType})
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(body.err, &tooBig):
		b.tooLarge(w, limit, g.size > 0)
		return
	case body.err != nil:
		apperr.WriteHTTP(w, http.StatusBadRequest, apperr.BadRequest, "The upload was cut short; please try again.")
		return
	case r.Context().Err() != nil:
		return // the client went away: no one is left to answer, nothing to log
	case err != nil:
		b.fail(w, r, key, err)
		return
	}
	// What the URL was for may have ended while the body arrived: then
	// what it stored must not stay.
	if accept != nil && accept(r.Context(), key) != nil {
		if err := b.Delete(context.WithoutCancel(r.Context()), key); err != nil {
			b.fail(w, r, key, err)
			return
		}
		b.accepts(w, r, key, accept)
		return
	}
	w.Header().Set("ETag", info.ETag)
	w.WriteHeader(http.StatusOK)
}

// accepts asks accept whether a PUT to key may store anything, and answers
// the request itself when not.
func (b *Bucket) accepts(w http.ResponseWriter, r *http.Request, key string, accept PutGuard) bool {
	if accept == nil {
		return true
	}
	err := accept(r.Context(), key)
	var aerr *apperr.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &aerr):
		apperr.WriteHTTP(w, http.StatusForbidden, aerr.Code, aerr.Message)
	default:
		b.fail(w, r, key, err)
	}
	return false
}

func (b *Bucket) tooLarge(w http.ResponseWriter, limit int64, declared bool) {
	msg := fmt.Sprintf("Uploads are limited to %d bytes.", limit)
	if declared {
		msg = fmt.Sprintf("This link accepts at most %d bytes, the size given when the upload was created.", limit)
	}
	apperr.WriteHTTP(w, http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge, msg)
}

// fail answers a failure of ours: the client sees INTERNAL, the log the
// cause (with the request id the logger takes from the context).
func (b *Bucket) fail(w http.ResponseWriter, r *http.Request, key string, err error) {
	b.log.ErrorContext(r.Context(), "local storage: serving a signed URL", "method", r.Method, "key", key, "err", err)
	apperr.WriteHTTP(w, http.StatusInternalServerError, apperr.Internal, "Something went wrong on our side. Please try again.")
}

// bodyReader remembers the error reading the request body gave, so that a
// client's fault (too large, cut short) can be told from a disk's.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

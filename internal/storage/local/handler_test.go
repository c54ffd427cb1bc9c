package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/storage"
)

// fixedNow is the time on the clock of the tests that check times to the
// second.
func fixedNow() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }

func setClock(b *Bucket) { b.now = fixedNow }

// request sends a request to u and returns the response with its body read.
func request(t *testing.T, method, u string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, u, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return resp, b
}

func mustPut(t *testing.T, b *Bucket, key string, data []byte, ct string) storage.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, bytes.NewReader(data), storage.PutOptions{ContentType: ct})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func mustSign(t *testing.T, b *Bucket, key, method, ct string, expires time.Time) string {
	t.Helper()
	u, err := b.SignedURL(t.Context(), key, storage.SignOptions{Method: method, Expires: expires, ContentType: ct})
	if err != nil {
		t.Fatalf("SignedURL: %v", err)
	}
	return u
}

func TestSignedURLShape(t *testing.T) {
	b := newBucket(t)
	setClock(b)
	expires := fixedNow().Add(time.Hour)
	tests := []struct {
		name, key, method, ct string
		wantPath              string
		wantQuery             []string
	}{
		{"GET", "users/u/a b#1.png", http.MethodGet, "", "/blobs/users/u/a%20b%231.png", []string{"X-Expires", "X-Method", "X-Signature"}},
		{"PUT", "users/u/up.png", http.MethodPut, "image/png", "/blobs/users/u/up.png", []string{"X-Content-Type", "X-Expires", "X-Method", "X-Signature"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mustSign(t, b, tt.key, tt.method, tt.ct, expires)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("parsing %q: %v", raw, err)
			}
			if got := u.Scheme + "://" + u.Host + u.EscapedPath(); got != "http://localhost:8080"+tt.wantPath {
				t.Errorf("URL: got %v, want %v", got, "http://localhost:8080"+tt.wantPath)
			}
			q := u.Query()
			var names []string
			for name := range q {
				names = append(names, name)
			}
			if len(names) != len(tt.wantQuery) {
				t.Errorf("query parameters: got %q, want %q", names, tt.wantQuery)
			}
			if got, want := q.Get("X-Expires"), strconv.FormatInt(expires.Unix(), 10); got != want {
				t.Errorf("X-Expires: got %v, want %v", got, want)
			}
			if got := q.Get("X-Method"); got != tt.method {
				t.Errorf("X-Method: got %v, want %v", got, tt.method)
			}
			if got := q.Get("X-Content-Type"); got != tt.ct {
				t.Errorf("X-Content-Type: got %v, want %v", got, tt.ct)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	b := newBucket(t)
	setClock(b)
	expires := fixedNow().Add(time.Minute)
	query := func(raw string) url.Values {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u.Query()
	}
	get := query(mustSign(t, b, "k", http.MethodGet, "", expires))
	put := query(mustSign(t, b, "k", http.MethodPut, "image/png", expires))
	longer := query(mustSign(t, b, "k", http.MethodGet, "", expires))
	longer.Set("X-Expires", strconv.FormatInt(expires.Add(time.Hour).Unix(), 10))
	typed := query(mustSign(t, b, "k", http.MethodPut, "image/png", expires))
	typed.Set("X-Content-Type", "text/html")

	tests := []struct {
		name   string
		method string
		key    string
		q      url.Values
		now    time.Time
		ok     bool
	}{
		{"GET", http.MethodGet, "k", get, fixedNow(), true},
		{"HEAD with a GET link", http.MethodHead, "k", get, fixedNow(), true},
		{"a second before expiry", http.MethodGet, "k", get, expires.Add(-time.Second), true},
		{"at expiry", http.MethodGet, "k", get, expires, false},
		{"after expiry", http.MethodGet, "k", get, expires.Add(time.Hour), false},
		{"PUT", http.MethodPut, "k", put, fixedNow(), true},
		{"PUT with a GET link", http.MethodPut, "k", get, fixedNow(), false},
		{"GET with a PUT link", http.MethodGet, "k", put, fixedNow(), false},
		{"HEAD with a PUT link", http.MethodHead, "k", put, fixedNow(), false},
		{"another key", http.MethodGet, "k2", get, fixedNow(), false},
		{"expiry pushed back", http.MethodGet, "k", longer, fixedNow(), false},
		{"content type changed", http.MethodPut, "k", typed, fixedNow(), false},
		{"no parameters", http.MethodGet, "k", url.Values{}, fixedNow(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.now = func() time.Time { return tt.now }
			_, err := b.verify(tt.method, tt.key, tt.q)
			if got := err == nil; got != tt.ok {
				t.Errorf("verify passed: got %v, want %v (%v)", got, tt.ok, err)
			}
			if err != nil && err.Code != "FORBIDDEN" {
				t.Errorf("code: got %v, want FORBIDDEN", err.Code)
			}
		})
	}
}

func TestSignedURLKeysDiffer(t *testing.T) {
	a, other := newBucket(t), newBucket(t)
	other.signingKey = bytes.Repeat([]byte{1}, 32)
	raw := mustSign(t, a, "k", http.MethodGet, "", time.Now().Add(time.Hour))
	u, _ := url.Parse(raw)
	if _, err := other.verify(http.MethodGet, "k", u.Query()); err == nil {
		t.Errorf("verify with another signing key: got nil error, want FORBIDDEN")
	}
}

func TestDownloadHeaders(t *testing.T) {
	b, _ := serve(t, setClock)
	const key, ct = "users/u/w/out.png", "image/png"
	data := bytes.Repeat([]byte("0123456789"), 100)
	info := mustPut(t, b, key, data, ct)
	u := mustSign(t, b, key, http.MethodGet, "", fixedNow().Add(90*time.Second+500*time.Millisecond))

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			resp, body := request(t, method, u, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %v, want %v (%s)", resp.StatusCode, http.StatusOK, body)
			}
			want := map[string]string{
				"Content-Type":            ct,
				"Content-Length":          "1000",
				"ETag":                    info.ETag,
				"Cache-Control":           "private, max-age=90",
				"Accept-Ranges":           "bytes",
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'; sandbox",
				"Last-Modified":           info.Updated.Format(http.TimeFormat),
			}
			for name, w := range want {
				if got := resp.Header.Get(name); got != w {
					t.Errorf("%s: got %v, want %v", name, got, w)
				}
			}
			wantBody := data
			if method == http.MethodHead {
				wantBody = nil
			}
			if !bytes.Equal(body, wantBody) {
				t.Errorf("body: got %d bytes, want %d", len(body), len(wantBody))
			}
		})
	}
}

func TestDownloadRange(t *testing.T) {
	b, _ := serve(t, nil)
	data := bytes.Repeat([]byte("abcdefghij"), 100)
	mustPut(t, b, "r.bin", data, "application/octet-stream")
	u := mustSign(t, b, "r.bin", http.MethodGet, "", time.Now().Add(time.Hour))

	tests := []struct {
		rng          string
		status       int
		contentRange string
		body         []byte
	}{
		{"bytes=10-19", http.StatusPartialContent, "bytes 10-19/1000", data[10:20]},
		{"bytes=990-", http.StatusPartialContent, "bytes 990-999/1000", data[990:]},
		{"bytes=-5", http.StatusPartialContent, "bytes 995-999/1000", data[995:]},
		{"bytes=995-2000", http.StatusPartialContent, "bytes 995-999/1000", data[995:]},
		{"bytes=2000-", http.StatusRequestedRangeNotSatisfiable, "bytes */1000", nil},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			resp, body := request(t, http.MethodGet, u, nil, http.Header{"Range": {tt.rng}})
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %v, want %v", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range: got %v, want %v", got, tt.contentRange)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
		})
	}
}

func TestDownloadConditional(t *testing.T) {
	b, _ := serve(t, nil)
	data := []byte("conditional")
	info := mustPut(t, b, "c.txt", data, "text/plain")
	u := mustSign(t, b, "c.txt", http.MethodGet, "", time.Now().Add(time.Hour))

	tests := []struct {
		name   string
		header http.Header
		status int
		body   []byte
	}{
		{"If-None-Match the ETag", http.Header{"If-None-Match": {info.ETag}}, http.StatusNotModified, nil},
		{"If-None-Match another", http.Header{"If-None-Match": {`"other"`}}, http.StatusOK, data},
		{"If-Range the ETag", http.Header{"If-Range": {info.ETag}, "Range": {"bytes=0-3"}}, http.StatusPartialContent, data[:4]},
		{"If-Range another", http.Header{"If-Range": {`"other"`}, "Range": {"bytes=0-3"}}, http.StatusOK, data},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := request(t, http.MethodGet, u, nil, tt.header)
			if resp.StatusCode != tt.status {
				t.Errorf("status: got %v, want %v", resp.StatusCode, tt.status)
			}
			if !bytes.Equal(body, tt.body) {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
		})
	}
}

// hideLength makes a request body of unknown length, sent chunked, so that
// only reading it can find it too large.
type hideLength struct{ r io.Reader }

func (h hideLength) Read(p []byte) (int, error) { return h.r.Read(p) }

func TestUploadLimit(t *testing.T) {
	const limit = 1 << 20 // serve's MaxPutBytes
	tests := []struct {
		name   string
		size   int
		known  bool
		status int
	}{
		{"at the limit", limit, true, http.StatusOK},
		{"at the limit, chunked", limit, false, http.StatusOK},
		{"over, declared", limit + 1, true, http.StatusRequestEntityTooLarge},
		{"over, chunked", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"far over, chunked", 4 * limit, false, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := serve(t, nil)
			old := mustPut(t, b, "kept.bin", []byte("old"), "text/plain")
			for _, key := range []string{"new.bin", "kept.bin"} {
				u := mustSign(t, b, key, http.MethodPut, "application/octet-stream", time.Now().Add(time.Hour))
				var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))
				if !tt.known {
					body = hideLength{body}
				}
				resp, rb := request(t, http.MethodPut, u, body, http.Header{"Content-Type": {"application/octet-stream"}})
				if resp.StatusCode != tt.status {
					t.Fatalf("PUT %s: got status %v, want %v (%s)", key, resp.StatusCode, tt.status, rb)
				}
				info, err := b.Stat(t.Context(), key)
				switch {
				case tt.status == http.StatusOK:
					if err != nil || info.Size != int64(tt.size) || resp.Header.Get("ETag") != info.ETag {
						t.Errorf("after PUT %s: got %+v, %v, ETag header %v, want %d bytes", key, info, err, resp.Header.Get("ETag"), tt.size)
					}
				case key == "kept.bin":
					if err != nil || info.ETag != old.ETag {
						t.Errorf("after refused PUT %s: got %+v, %v, want the old object", key, info, err)
					}
					checkErrorBody(t, rb, "PAYLOAD_TOO_LARGE")
				default:
					if !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("after refused PUT %s: got %+v, %v, want %v", key, info, err, storage.ErrNotFound)
					}
				}
			}
			if entries, _ := os.ReadDir(b.tmp); len(entries) != 0 {
				t.Errorf("tmp after the uploads: got %d files, want none", len(entries))
			}
		})
	}
}

func TestHandlerErrors(t *testing.T) {
	b, srv := serve(t, nil)
	mustPut(t, b, "there.txt", []byte("x"), "text/plain")
	hour := time.Now().Add(time.Hour)
	get := mustSign(t, b, "there.txt", http.MethodGet, "", hour)
	put := mustSign(t, b, "up.png", http.MethodPut, "image/png", hour)
	missing := mustSign(t, b, "missing.txt", http.MethodGet, "", hour)

	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
		status int
		code   string
	}{
		{"missing object", http.MethodGet, missing, nil, http.StatusNotFound, "NOT_FOUND"},
		{"unsigned", http.MethodGet, srv.URL + "/blobs/there.txt", nil, http.StatusForbidden, "FORBIDDEN"},
		{"HEAD with a PUT link", http.MethodHead, put, nil, http.StatusForbidden, ""},
		{"GET with a PUT link", http.MethodGet, put, nil, http.StatusForbidden, "FORBIDDEN"},
		{"PUT of another type", http.MethodPut, put, http.Header{"Content-Type": {"image/png; charset=utf-8"}}, http.StatusForbidden, "FORBIDDEN"},
		{"DELETE", http.MethodDelete, get, nil, http.StatusMethodNotAllowed, "BAD_REQUEST"},
		{"POST", http.MethodPost, put, http.Header{"Content-Type": {"image/png"}}, http.StatusMethodNotAllowed, "BAD_REQUEST"},
		{"OPTIONS", http.MethodOptions, get, nil, http.StatusMethodNotAllowed, "BAD_REQUEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == http.MethodPut || tt.method == http.MethodPost {
				body = strings.NewReader("data")
			}
			resp, rb := request(t, tt.method, tt.url, body, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %v, want %v (%s)", resp.StatusCode, tt.status, rb)
			}
			if tt.status == http.StatusMethodNotAllowed {
				if got, want := resp.Header.Get("Allow"), "GET, HEAD, PUT"; got != want {
					t.Errorf("Allow: got %v, want %v", got, want)
				}
			}
			if tt.code != "" {
				checkErrorBody(t, rb, tt.code)
			}
		})
	}
	if _, err := b.Stat(t.Context(), "up.png"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after refused uploads: got %v, want %v", err, storage.ErrNotFound)
	}

	// Mounted elsewhere by mistake, the handler finds no key rather than
	// taking the whole path for one.
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/elsewhere/there.txt", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("outside the base path: got status %v, want %v", rec.Code, http.StatusNotFound)
	}
	checkErrorBody(t, rec.Body.Bytes(), "NOT_FOUND")
}

func checkErrorBody(t *testing.T, body []byte, code string) {
	t.Helper()
	var got struct {
		Errors []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if len(got.Errors) != 1 || got.Errors[0].Extensions.Code != code || got.Errors[0].Message == "" {
		t.Errorf("error body: got %s, want one error with a message and code %v", body, code)
	}
}

// A PUT URL signed with a size accepts no larger body (and a URL whose size
// was raised no longer verifies); a guard that refuses a PUT, before or
// after its body arrived, leaves nothing stored.
func TestUploadSignedSizeAndGuard(t *testing.T) {
	b, srv := serve(t, nil)
	closed := map[string]bool{}
	calls := map[string]int{}
	var mu sync.Mutex
	guarded := httptest.NewServer(b.HandlerAccepting(func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		calls[key]++
		// "late" ends while its body arrives: the second ask refuses.
		if closed[key] || key == "late" && calls[key] > 1 {
			return apperr.Errorf(apperr.Forbidden, "This upload is over.")
		}
		return nil
	}))
	t.Cleanup(guarded.Close)
	sign := func(key string, size int64) string {
		u, err := b.SignedURL(t.Context(), key, storage.SignOptions{Method: http.MethodPut, Expires: time.Now().Add(time.Hour), ContentType: "image/png", Size: size})
		if err != nil {
			t.Fatalf("SignedURL: %v", err)
		}
		return u
	}
	ct := http.Header{"Content-Type": {"image/png"}}
	tests := []struct {
		name   string
		url    string
		body   io.Reader
		status int
		code   string
	}{
		{"at the size", sign("a", 100), bytes.NewReader(make([]byte, 100)), http.StatusOK, ""},
		{"over the size", sign("b", 100), bytes.NewReader(make([]byte, 101)), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"over the size, chunked", sign("c", 100), hideLength{bytes.NewReader(make([]byte, 5000))}, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"size raised", strings.Replace(sign("d", 100), "X-Size=100", "X-Size=5000", 1), bytes.NewReader(make([]byte, 101)), http.StatusForbidden, "FORBIDDEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, rb := request(t, http.MethodPut, tt.url, tt.body, ct)
			if resp.StatusCode != tt.status {
				t.Fatalf("PUT: got %d (%s), want %d", resp.StatusCode, rb, tt.status)
			}
			if tt.code != "" {
				checkErrorBody(t, rb, tt.code)
				key := strings.TrimPrefix(strings.SplitN(tt.url, "?", 2)[0], srv.URL+"/blobs/")
				if _, err := b.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("after the refused PUT: Stat got %v, want %v", err, storage.ErrNotFound)
				}
			}
		})
	}

	u := strings.Replace(sign("g", 100), srv.URL, guarded.URL, 1)
	if resp, rb := request(t, http.MethodPut, u, bytes.NewReader(make([]byte, 10)), ct); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT while the guard accepts: got %d (%s), want 200", resp.StatusCode, rb)
	}
	mu.Lock()
	closed["g"] = true
	mu.Unlock()
	if err := b.Delete(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	resp, rb := request(t, http.MethodPut, u, bytes.NewReader(make([]byte, 10)), ct)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT once the guard refuses: got %d (%s), want 403", resp.StatusCode, rb)
	}
	checkErrorBody(t, rb, "FORBIDDEN")
	if _, err := b.Stat(t.Context(), "g"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after the guarded PUT: Stat got %v, want %v", err, storage.ErrNotFound)
	}

	u = strings.Replace(sign("late", 100), srv.URL, guarded.URL, 1)
	resp, rb = request(t, http.MethodPut, u, bytes.NewReader(make([]byte, 10)), ct)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT whose upload ended while it arrived: got %d (%s), want 403", resp.StatusCode, rb)
	}
	if _, err := b.Stat(t.Context(), "late"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after a PUT whose upload ended: Stat got %v, want %v", err, storage.ErrNotFound)
	}
}

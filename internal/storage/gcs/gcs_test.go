package gcs_test

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	cloudstorage "cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/gcs"
	"github.com/fastimage/api/internal/storage/storagetest"
)

const testEmail = "signer@fastimage-test.iam.gserviceaccount.com"

// env is a fake-gcs-server listening on 127.0.0.1 and a key that plays the
// service account's.
type env struct {
	srv *fakestorage.Server
	// host is the fake's host:port, which signed URLs are made to point at.
	host    string
	key     *rsa.PrivateKey
	keyJSON []byte
	buckets atomic.Int64
}

// newEnv starts a fake GCS server for the test. PublicHost "127.0.0.1"
// makes the fake serve /<bucket>/<object> (XML-API style, as signed URLs
// use) to requests for 127.0.0.1 on any port.
func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       0,
		PublicHost: "127.0.0.1",
	})
	if err != nil {
		t.Fatalf("starting fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatalf("parsing the fake's URL: %v", err)
	}
	key, keyJSON := newServiceAccountKey(t, testEmail)
	return &env{srv: srv, host: u.Host, key: key, keyJSON: keyJSON}
}

// newServiceAccountKey returns a throwaway RSA key and a service-account JSON
// key file holding it.
func newServiceAccountKey(t *testing.T, email string) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generating an RSA key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling the key: %v", err)
	}
	j, err := json.Marshal(map[string]string{
		"type":         "service_account",
		"client_email": email,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	if err != nil {
		t.Fatalf("marshalling the JSON key: %v", err)
	}
	return key, j
}

// client returns a real GCS client that talks HTTP to the fake through rt
// (nil: the default transport).
func (e *env) client(t *testing.T, rt http.RoundTripper) *cloudstorage.Client {
	t.Helper()
	if rt == nil {
		rt = http.DefaultTransport
	}
	c, err := cloudstorage.NewClient(t.Context(),
		option.WithEndpoint(e.srv.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: rt}),
		option.WithoutAuthentication(),
		cloudstorage.WithJSONReads(),
	)
	if err != nil {
		t.Fatalf("creating the GCS client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// config returns a Config for a new, empty bucket in the fake, signing with
// the env's key and pointing signed URLs at the fake.
func (e *env) config(t *testing.T, client *cloudstorage.Client) gcs.Config {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", e.buckets.Add(1))
	e.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return gcs.Config{
		Bucket:          name,
		Client:          client,
		SigningKeyJSON:  e.keyJSON,
		SignedURLHost:   e.host,
		SignedURLScheme: "http",
	}
}

// bucket returns a Bucket on a new, empty bucket of the fake.
func (e *env) bucket(t *testing.T, cfg gcs.Config) *gcs.Bucket {
	t.Helper()
	b, err := gcs.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fetch performs a request on a signed URL, which already points at the
// fake (Config.SignedURLHost and SignedURLScheme).
func fetch(t *testing.T, method, u string, body io.Reader, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, u, err)
	}
	if header != nil {
		req.Header = header.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp
}

// TestConformance runs the shared storage.Bucket suite against the fake.
// fake-gcs-server verifies neither signatures nor expiry, so the checks that
// need a server enforcing them are skipped; TestSignedURL* verify the
// signatures themselves.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	client := e.client(t, nil)
	newBucket := func(t *testing.T) storage.Bucket { return e.bucket(t, e.config(t, client)) }
	storagetest.Run(t, newBucket, fetch, storagetest.Options{SignatureEnforced: false})
}

func TestPutOpen(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, e.client(t, nil))
	cfg.ChunkSize = 256 << 10 // the smallest, so that a small object takes several chunks
	b := e.bucket(t, cfg)

	tests := []struct {
		name string
		size int
		opts storage.PutOptions
		want string // stored content type
	}{
		{"empty", 0, storage.PutOptions{ContentType: "text/plain"}, "text/plain"},
		{"one chunk", 1000, storage.PutOptions{ContentType: "image/png", CacheControl: "public, max-age=60"}, "image/png"},
		{"several chunks", 3*256<<10 + 17, storage.PutOptions{ContentType: "image/webp"}, "image/webp"},
		{"no content type", 10, storage.PutOptions{}, "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			key := "users/u/" + strings.ReplaceAll(tt.name, " ", "-")
			data := randomBytes(t, tt.size)
			sum := md5.Sum(data)

			put, err := b.Put(ctx, key, bytes.NewReader(data), tt.opts)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			want := storage.ObjectInfo{Key: key, Size: int64(tt.size), ContentType: tt.want, ETag: hex.EncodeToString(sum[:]), Updated: put.Updated}
			if put != want || put.Updated.IsZero() {
				t.Errorf("Put: got %+v, want %+v", put, want)
			}
			stat, err := b.Stat(ctx, key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if !stat.Updated.Equal(put.Updated) {
				t.Errorf("Stat Updated: got %v, want %v", stat.Updated, put.Updated)
			}
			stat.Updated = put.Updated
			if stat != want {
				t.Errorf("Stat: got %+v, want %+v", stat, want)
			}

			attrs, err := cfg.Client.Bucket(cfg.Bucket).Object(key).Attrs(ctx)
			if err != nil {
				t.Fatalf("Attrs: %v", err)
			}
			if attrs.CacheControl != tt.opts.CacheControl {
				t.Errorf("stored Cache-Control: got %q, want %q", attrs.CacheControl, tt.opts.CacheControl)
			}

			rc, info, err := b.Open(ctx, key, 0, -1)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("Open: got %d bytes that differ from the %d put", len(got), len(data))
			}
			if info.ETag != want.ETag || info.Size != want.Size {
				t.Errorf("Open info: got %+v, want %+v", info, want)
			}
		})
	}
}

func TestETagFollowsContent(t *testing.T) {
	e := newEnv(t)
	b := e.bucket(t, e.config(t, e.client(t, nil)))
	ctx := t.Context()
	put := func(key, content string) string {
		t.Helper()
		info, err := b.Put(ctx, key, strings.NewReader(content), storage.PutOptions{ContentType: "text/plain"})
		if err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		return info.ETag
	}
	first := put("a", "same")
	if again := put("a", "same"); again != first {
		t.Errorf("ETag after rewriting the same bytes: got %v, want %v", again, first)
	}
	if other := put("b", "same"); other != first {
		t.Errorf("ETag of the same bytes under another key: got %v, want %v", other, first)
	}
	if changed := put("a", "different"); changed == first {
		t.Errorf("ETag after changing the bytes: got %v, want a new one", changed)
	}
}

func TestOpenErrors(t *testing.T) {
	e := newEnv(t)
	b := e.bucket(t, e.config(t, e.client(t, nil)))
	if _, err := b.Put(t.Context(), "k", strings.NewReader("0123456789"), storage.PutOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	tests := []struct {
		name           string
		key            string
		offset, length int64
		notFound       bool
	}{
		{"missing", "nope", 0, -1, true},
		{"negative offset", "k", -1, -1, false},
		{"past the end", "k", 11, -1, false},
		{"invalid key", "../k", 0, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, _, err := b.Open(t.Context(), tt.key, tt.offset, tt.length)
			if err == nil {
				rc.Close()
				t.Fatalf("Open: got nil error, want one")
			}
			if got := errors.Is(err, storage.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound): got %v, want %v", err, got, tt.notFound)
			}
		})
	}
}

func TestListAndDeletePrefix(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, e.client(t, nil))
	cfg.DeleteWorkers = 3
	b := e.bucket(t, cfg)
	ctx := t.Context()

	var mine []string
	for i := range 40 {
		key := fmt.Sprintf("users/u1/works/%02d.png", i)
		mine = append(mine, key)
		if _, err := b.Put(ctx, key, strings.NewReader(key), storage.PutOptions{ContentType: "image/png"}); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
	}
	for _, key := range []string{"users/u10/a.png", "users/u2/a.png"} {
		if _, err := b.Put(ctx, key, strings.NewReader(key), storage.PutOptions{ContentType: "image/png"}); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
	}

	infos, err := b.List(ctx, "users/u1/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	if !slices.Equal(keys, mine) {
		t.Errorf("List: got %q, want %q", keys, mine)
	}

	n, err := b.DeletePrefix(ctx, "users/u1/")
	if err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	if n != len(mine) {
		t.Errorf("DeletePrefix count: got %v, want %v", n, len(mine))
	}
	infos, err = b.List(ctx, "users/")
	if err != nil {
		t.Fatalf("List after DeletePrefix: %v", err)
	}
	keys = keys[:0]
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	if want := []string{"users/u10/a.png", "users/u2/a.png"}; !slices.Equal(keys, want) {
		t.Errorf("keys left: got %q, want %q", keys, want)
	}
}

func TestName(t *testing.T) {
	e := newEnv(t)
	b := e.bucket(t, e.config(t, e.client(t, nil)))
	if got := b.Name(); got != "gcs" {
		t.Errorf("Name: got %v, want %v", got, "gcs")
	}
}

// faults is an http.RoundTripper in front of the fake that answers some
// requests with 503, either instead of passing them on (the request was
// lost) or after passing them on (the response was lost).
type faults struct {
	next http.RoundTripper

	mu    sync.Mutex
	rules []*rule
}

type rule struct {
	match func(*http.Request) bool
	// times is how many matching requests fail; -1 is all of them.
	times int
	// after passes the request on before failing it.
	after bool
	// before runs before a failing request is passed on (or not).
	before func()
	seen   int
}

func (f *faults) add(r *rule) *rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, r)
	return r
}

func (f *faults) count(r *rule) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.seen
}

func (f *faults) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	var hit *rule
	for _, r := range f.rules {
		if r.match(req) {
			r.seen++
			if r.times != 0 {
				if r.times > 0 {
					r.times--
				}
				hit = r
			}
			break
		}
	}
	f.mu.Unlock()
	if hit == nil {
		return f.next.RoundTrip(req)
	}
	if hit.before != nil {
		hit.before()
	}
	if hit.after {
		resp, err := f.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	} else if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusServiceUnavailable,
		Status:     "503 Service Unavailable",
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(`{"error":{"code":503,"message":"try again"}}`)),
		Request:    req,
	}, nil
}

func isUpload(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/upload/") }
func isMetadataGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/storage/v1/b/") && strings.Contains(r.URL.Path, "/o/") && r.URL.Query().Get("alt") != "media"
}
func isList(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/o")
}
func isDelete(r *http.Request) bool { return r.Method == http.MethodDelete }
func isDownload(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/download/") || r.URL.Query().Get("alt") == "media"
}

func TestRetries(t *testing.T) {
	const key = "users/u/retried.png"
	content := "retried content"
	put := func(t *testing.T, b *gcs.Bucket) { mustPut(t, b, key, content) }
	tests := []struct {
		name string
		// existing is put under key before the faults begin; "" puts nothing.
		existing string
		rule     rule
		op       func(t *testing.T, b *gcs.Bucket)
	}{
		{"upload lost", "", rule{match: isUpload, times: 2}, put},
		{"upload lost over an object", "old", rule{match: isUpload, times: 2}, put},
		// The first upload lands but its answer is lost; the retry then fails
		// its generation precondition, and Put recognises its own bytes.
		{"upload answer lost", "", rule{match: isUpload, times: 1, after: true}, put},
		{"upload answer lost over an object", "old", rule{match: isUpload, times: 1, after: true}, put},
		{"stat", content, rule{match: isMetadataGet, times: 2}, func(t *testing.T, b *gcs.Bucket) {
			if _, err := b.Stat(t.Context(), key); err != nil {
				t.Errorf("Stat: %v", err)
			}
		}},
		{"read", content, rule{match: isDownload, times: 2}, func(t *testing.T, b *gcs.Bucket) {
			if got := mustRead(t, b, key); got != content {
				t.Errorf("Open: got %q, want %q", got, content)
			}
		}},
		{"list", content, rule{match: isList, times: 2}, func(t *testing.T, b *gcs.Bucket) {
			infos, err := b.List(t.Context(), "users/")
			if err != nil || len(infos) != 1 {
				t.Errorf("List: got %v, %v, want one object", infos, err)
			}
		}},
		{"delete answer lost", content, rule{match: isDelete, times: 1, after: true}, func(t *testing.T, b *gcs.Bucket) {
			if err := b.Delete(t.Context(), key); err != nil {
				t.Errorf("Delete: %v", err)
			}
		}},
		{"delete prefix", content, rule{match: isDelete, times: 2}, func(t *testing.T, b *gcs.Bucket) {
			n, err := b.DeletePrefix(t.Context(), "users/")
			if err != nil || n != 1 {
				t.Errorf("DeletePrefix: got %v, %v, want 1, nil", n, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			f := &faults{next: http.DefaultTransport}
			b := e.bucket(t, e.config(t, e.client(t, f)))
			if tt.existing != "" {
				mustPut(t, b, key, tt.existing)
			}
			r := tt.rule
			f.add(&r)
			tt.op(t, b)
			if seen := f.count(&r); seen < 2 {
				t.Errorf("matching requests: got %v, want a retry (at least 2)", seen)
			}
			if strings.HasPrefix(tt.name, "upload") {
				if got := mustRead(t, b, key); got != content {
					t.Errorf("object after Put: got %q, want %q", got, content)
				}
			}
		})
	}
}

func TestRetriesGiveUp(t *testing.T) {
	e := newEnv(t)
	f := &faults{next: http.DefaultTransport}
	cfg := e.config(t, e.client(t, f))
	cfg.MaxAttempts = 3
	b := e.bucket(t, cfg)
	r := f.add(&rule{match: isMetadataGet, times: -1})
	_, err := b.Stat(t.Context(), "k")
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat: got %v, want the 503", err)
	}
	// Retries that ran out on an error worth retrying say so, for callers
	// that try again later (found by the storage drill, internal/drills).
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Stat: got %v, want it to wrap storage.ErrUnavailable", err)
	}
	if seen := f.count(r); seen != cfg.MaxAttempts {
		t.Errorf("attempts: got %v, want %v", seen, cfg.MaxAttempts)
	}
}

// TestPutConcurrentWrite makes another writer replace the object between
// Put's generation check and its upload: the upload's precondition fails and
// Put reports it rather than overwrite the newer object.
func TestPutConcurrentWrite(t *testing.T) {
	e := newEnv(t)
	f := &faults{next: http.DefaultTransport}
	cfg := e.config(t, e.client(t, f))
	b := e.bucket(t, cfg)
	const key = "users/u/raced.png"
	mustPut(t, b, key, "first")
	f.add(&rule{match: isUpload, times: 1, before: func() {
		e.srv.CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: cfg.Bucket, Name: key, ContentType: "text/plain"},
			Content:     []byte("theirs"),
		})
	}})
	// The rule fails the first upload attempt after the other write; the
	// retry meets the precondition failure.
	if _, err := b.Put(t.Context(), key, strings.NewReader("mine"), storage.PutOptions{ContentType: "text/plain"}); err == nil {
		t.Errorf("Put: got nil error, want a precondition failure")
	}
	if got := mustRead(t, b, key); got != "theirs" {
		t.Errorf("object: got %q, want %q", got, "theirs")
	}
}

func mustPut(t *testing.T, b storage.Bucket, key, content string) storage.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(content), storage.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func mustRead(t *testing.T, b storage.Bucket, key string) string {
	t.Helper()
	rc, _, err := b.Open(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return string(data)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	return b
}

// Package storagetest checks that a storage.Bucket behaves the way the rest of
// the service relies on, so that the GCS and local-folder buckets stay
// interchangeable. Each implementation's tests call Run.
//
// Behaviour the suite pins down where the Bucket interface leaves room:
//
//   - Open with offset past the end of the object (offset > size) fails from
//     Open itself with an error that is not ErrNotFound. offset == size is
//     left unspecified (GCS answers 416 there). A length reaching past the
//     end reads to the end; length 0 reads nothing.
//   - The ObjectInfo from Open describes the whole object (Size is the
//     object's size, not the range's). Its ETag may be empty, since a GCS
//     reader does not carry one; when present it equals Stat's.
//   - A Put that fails (its reader errors) stores nothing and leaves any
//     previous object under the key as it was.
//   - A key that is only a prefix of other keys ("a" when "a/b" exists) is
//     not an object: Stat and Open report ErrNotFound.
//   - Put and SignedURL refuse keys that storage.ValidKey refuses.
//   - DeletePrefix refuses the empty prefix rather than emptying the bucket.
//   - SignedURL refuses methods other than GET and PUT, a zero Expires, an
//     Expires more than 7 days ahead (GCS's limit), and a PUT without a
//     ContentType (uploads must say what they are, so that they are served
//     with that type).
package storagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/storage"
)

// Options say which checks the environment behind a Bucket can make.
type Options struct {
	// SignatureEnforced says that the server behind fetch refuses signed
	// URLs that have expired or were tampered with (another signature, key,
	// method or content type). fake-gcs-server serves signed URLs without
	// verifying them, so GCS tests against it leave this false and those
	// checks are skipped.
	SignatureEnforced bool
	// RefusedStatus, when not zero, is the exact HTTP status a refused signed
	// URL must get (403 for the local bucket). Zero accepts any status
	// outside 2xx, because GCS answers some refusals with 400 (e.g. an
	// expired URL) and others with 403.
	RefusedStatus int
	// Clock, when not nil, is the clock of every bucket newBucket makes:
	// the suite then tells time by it and moves it forward, rather than
	// sleeping until a signed URL has expired. GCS decides expiry by its own
	// clock, so its tests leave this nil.
	Clock *clock.Fake
}

// Run runs the conformance suite against buckets made by newBucket. Each
// subtest calls newBucket once and needs an empty bucket that no other call
// shares, because subtests run in parallel and list and delete by prefix.
// fetch performs an HTTP request against a signed URL and returns the
// response; Run closes its body.
func Run(t *testing.T, newBucket func(t *testing.T) storage.Bucket, fetch func(t *testing.T, method, url string, body io.Reader, header http.Header) *http.Response, opts Options) {
	s := suite{newBucket: newBucket, fetch: fetch, opts: opts}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Name", s.testName},
		{"PutStatOpen", s.testPutStatOpen},
		{"PutEmpty", s.testPutEmpty},
		{"PutStreams", s.testPutStreams},
		{"PutFailingReader", s.testPutFailingReader},
		{"PutReplaces", s.testPutReplaces},
		{"OpenRange", s.testOpenRange},
		{"OpenPastEnd", s.testOpenPastEnd},
		{"Missing", s.testMissing},
		{"Delete", s.testDelete},
		{"List", s.testList},
		{"DeletePrefix", s.testDeletePrefix},
		{"DeletePrefixEmpty", s.testDeletePrefixEmpty},
		{"InvalidKeys", s.testInvalidKeys},
		{"SignedURLOptions", s.testSignedURLOptions},
		{"SignedGET", s.testSignedGET},
		{"SignedGETMissing", s.testSignedGETMissing},
		{"SignedPUT", s.testSignedPUT},
		{"SignedURLExpired", s.testSignedURLExpired},
		{"SignedURLTampered", s.testSignedURLTampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t)
		})
	}
}

type suite struct {
	newBucket func(t *testing.T) storage.Bucket
	fetch     func(t *testing.T, method, url string, body io.Reader, header http.Header) *http.Response
	opts      Options
}

// now is the time by the buckets' clock.
func (s suite) now() time.Time {
	if s.opts.Clock != nil {
		return s.opts.Clock.Now()
	}
	return time.Now()
}

// wait lets d pass on the buckets' clock.
func (s suite) wait(d time.Duration) {
	if s.opts.Clock != nil {
		s.opts.Clock.Advance(d)
		return
	}
	time.Sleep(d)
}

func (s suite) testName(t *testing.T) {
	b := s.newBucket(t)
	if b.Name() == "" {
		t.Errorf("Name() is empty")
	}
}

func (s suite) testPutStatOpen(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	const key, ct = "users/u1/works/w1/source.png", "image/png"
	data := pattern(1000, 1)

	put, err := b.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{ContentType: ct, CacheControl: "private, max-age=60"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", put, key, int64(len(data)), ct)

	stat, err := b.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkInfo(t, "Stat", stat, key, int64(len(data)), ct)
	if stat.ETag != put.ETag {
		t.Errorf("Stat ETag: got %v, want %v (Put's)", stat.ETag, put.ETag)
	}

	got, info := mustRead(t, b, key, 0, -1)
	if !bytes.Equal(got, data) {
		t.Errorf("Open: got %d bytes that differ from the %d put", len(got), len(data))
	}
	checkOpenInfo(t, info, stat)
}

func (s suite) testPutEmpty(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	const key = "empty.txt"
	put, err := b.Put(ctx, key, strings.NewReader(""), storage.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", put, key, 0, "text/plain")
	got, _ := mustRead(t, b, key, 0, -1)
	if len(got) != 0 {
		t.Errorf("Open: got %d bytes, want 0", len(got))
	}
}

// testPutStreams puts an object much larger than any buffer a streaming
// implementation would use. The source is generated on the fly and hashed
// as it is read, so neither side of the test holds it in memory.
func (s suite) testPutStreams(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	const key, size = "big/blob.bin", 32 << 20
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size), want)

	put, err := b.Put(ctx, key, src, storage.PutOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if put.Size != size {
		t.Errorf("Put Size: got %v, want %v", put.Size, size)
	}

	rc, info, err := b.Open(ctx, key, 0, -1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	got := sha256.New()
	n, err := io.Copy(got, rc)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if n != size || info.Size != size {
		t.Errorf("size read, size reported: got %v, %v, want %v", n, info.Size, size)
	}
	if g, w := hex.EncodeToString(got.Sum(nil)), hex.EncodeToString(want.Sum(nil)); g != w {
		t.Errorf("sha256: got %v, want %v", g, w)
	}
}

var errBrokenReader = errors.New("storagetest: reader broke")

// brokenReader yields n bytes and then fails, like an upload whose client
// went away.
type brokenReader struct{ n int }

func (r *brokenReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBrokenReader
	}
	p = p[:min(len(p), r.n)]
	for i := range p {
		p[i] = 'x'
	}
	r.n -= len(p)
	return len(p), nil
}

func (s suite) testPutFailingReader(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)

	if _, err := b.Put(ctx, "fresh", &brokenReader{n: 1 << 20}, storage.PutOptions{ContentType: "text/plain"}); err == nil {
		t.Errorf("Put from a failing reader: got nil error, want one")
	}
	if _, err := b.Stat(ctx, "fresh"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after a failed Put: got %v, want %v", err, storage.ErrNotFound)
	}

	old := pattern(100, 2)
	mustPut(t, b, "kept", old, "text/plain")
	if _, err := b.Put(ctx, "kept", &brokenReader{n: 1 << 20}, storage.PutOptions{ContentType: "image/png"}); err == nil {
		t.Errorf("Put from a failing reader over an object: got nil error, want one")
	}
	got, info := mustRead(t, b, "kept", 0, -1)
	if !bytes.Equal(got, old) || info.ContentType != "text/plain" {
		t.Errorf("object after a failed replace: got %d bytes of %v, want the previous %d bytes of text/plain", len(got), info.ContentType, len(old))
	}
}

func (s suite) testPutReplaces(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	const key = "r/obj"
	first := mustPut(t, b, key, pattern(300, 3), "text/plain")
	second := pattern(120, 4)
	mustPut(t, b, key, second, "image/webp")

	stat, err := b.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkInfo(t, "Stat", stat, key, int64(len(second)), "image/webp")
	if stat.ETag == first.ETag {
		t.Errorf("ETag after replacing the content: got %v, want a new one", stat.ETag)
	}
	got, _ := mustRead(t, b, key, 0, -1)
	if !bytes.Equal(got, second) {
		t.Errorf("Open after replace: got %d bytes, want the second %d", len(got), len(second))
	}
}

func (s suite) testOpenRange(t *testing.T) {
	b := s.newBucket(t)
	const key = "ranged.bin"
	data := pattern(1000, 5)
	mustPut(t, b, key, data, "application/octet-stream")

	tests := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, data},
		{"offset and length", 10, 20, data[10:30]},
		{"offset to end", 990, -1, data[990:]},
		{"length past end", 990, 100, data[990:]},
		{"first byte", 0, 1, data[:1]},
		{"last byte", 999, 1, data[999:]},
		{"zero length", 10, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, info := mustRead(t, b, key, tt.offset, tt.length)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Open(%d, %d): got %d bytes %x…, want %d bytes %x…", tt.offset, tt.length, len(got), head(got), len(tt.want), head(tt.want))
			}
			if info.Size != int64(len(data)) {
				t.Errorf("Open(%d, %d) Size: got %v, want the object's %v", tt.offset, tt.length, info.Size, len(data))
			}
		})
	}
}

func (s suite) testOpenPastEnd(t *testing.T) {
	b := s.newBucket(t)
	const key = "short.bin"
	mustPut(t, b, key, pattern(100, 6), "application/octet-stream")
	for _, length := range []int64{-1, 10} {
		rc, _, err := b.Open(t.Context(), key, 110, length)
		if err == nil {
			rc.Close()
			t.Errorf("Open(110, %d) of a 100-byte object: got nil error, want one", length)
			continue
		}
		if errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(110, %d) of a 100-byte object: got %v, want an error other than ErrNotFound", length, err)
		}
	}
}

func (s suite) testMissing(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	mustPut(t, b, "users/a/x.png", pattern(10, 7), "image/png")
	for _, key := range []string{"nothing/here.png", "users/a/y.png", "users/a", "users"} {
		t.Run(key, func(t *testing.T) {
			if _, err := b.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat: got %v, want %v", err, storage.ErrNotFound)
			}
			rc, _, err := b.Open(ctx, key, 0, -1)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Open: got %v, want %v", err, storage.ErrNotFound)
			}
		})
	}
}

func (s suite) testDelete(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	mustPut(t, b, "d/1", pattern(10, 8), "text/plain")
	mustPut(t, b, "d/2", pattern(10, 9), "text/plain")

	if err := b.Delete(ctx, "d/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx, "d/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after Delete: got %v, want %v", err, storage.ErrNotFound)
	}
	if _, err := b.Stat(ctx, "d/2"); err != nil {
		t.Errorf("Stat of the sibling: got %v, want nil", err)
	}
	for _, key := range []string{"d/1", "never/was"} {
		if err := b.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing key: got %v, want nil", key, err)
		}
	}
}

func (s suite) testList(t *testing.T) {
	b := s.newBucket(t)
	// The keys sort differently as strings than as a walk of folders would
	// ('-' < '.' < '/'), which is what key order means.
	sizes := map[string]int{"p/b": 4, "p/a/b.png": 3, "p/a.c": 2, "p/a-b": 1, "q/x": 5, "pa": 6}
	for key, n := range sizes {
		mustPut(t, b, key, pattern(n, 10), "text/plain")
	}

	tests := []struct {
		prefix string
		want   []string
	}{
		{"p/", []string{"p/a-b", "p/a.c", "p/a/b.png", "p/b"}},
		{"p/a", []string{"p/a-b", "p/a.c", "p/a/b.png"}},
		{"p/a/", []string{"p/a/b.png"}},
		{"p", []string{"p/a-b", "p/a.c", "p/a/b.png", "p/b", "pa"}},
		{"q/x", []string{"q/x"}},
		{"nothing/", nil},
		{"", []string{"p/a-b", "p/a.c", "p/a/b.png", "p/b", "pa", "q/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			infos, err := b.List(t.Context(), tt.prefix)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var keys []string
			for _, info := range infos {
				keys = append(keys, info.Key)
				if want := int64(sizes[info.Key]); info.Size != want || info.ContentType != "text/plain" || info.ETag == "" {
					t.Errorf("List entry %q: got size %v, type %q, ETag %q, want size %v, type text/plain, an ETag", info.Key, info.Size, info.ContentType, info.ETag, want)
				}
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("List(%q): got %q, want %q", tt.prefix, keys, tt.want)
			}
		})
	}
}

func (s suite) testDeletePrefix(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	for _, key := range []string{"users/a/x.png", "users/a/sub/y.png", "users/a2/z.png", "users/ab.png", "users/b/x.png"} {
		mustPut(t, b, key, pattern(10, 11), "image/png")
	}

	n, err := b.DeletePrefix(ctx, "users/a/")
	if err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	if n != 2 {
		t.Errorf("DeletePrefix count: got %v, want %v", n, 2)
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	if want := []string{"users/a2/z.png", "users/ab.png", "users/b/x.png"}; !slices.Equal(keys, want) {
		t.Errorf("keys left: got %q, want %q", keys, want)
	}

	n, err = b.DeletePrefix(ctx, "users/a/")
	if err != nil || n != 0 {
		t.Errorf("DeletePrefix again: got %v, %v, want 0, nil", n, err)
	}
}

func (s suite) testDeletePrefixEmpty(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	mustPut(t, b, "keep/me", pattern(10, 12), "text/plain")
	if _, err := b.DeletePrefix(ctx, ""); err == nil {
		t.Errorf("DeletePrefix(\"\"): got nil error, want one")
	}
	if _, err := b.Stat(ctx, "keep/me"); err != nil {
		t.Errorf("Stat after DeletePrefix(\"\"): got %v, want nil", err)
	}
}

func (s suite) testInvalidKeys(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	for _, key := range []string{"", "../x", "a/../../x", "/abs", "a//b", "a/./b", "dir/", "..", "a\\b", "a\nb"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			if _, err := b.Put(ctx, key, strings.NewReader("x"), storage.PutOptions{ContentType: "text/plain"}); err == nil {
				t.Errorf("Put: got nil error, want one")
			}
			if u, err := b.SignedURL(ctx, key, storage.SignOptions{Method: http.MethodGet, Expires: s.now().Add(time.Hour)}); err == nil {
				t.Errorf("SignedURL: got %v, want an error", u)
			}
		})
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(infos) != 0 {
		t.Errorf("objects after refused Puts: got %v, want none", infos)
	}
}

func (s suite) testSignedURLOptions(t *testing.T) {
	b := s.newBucket(t)
	hour := s.now().Add(time.Hour)
	tests := []struct {
		name string
		opts storage.SignOptions
	}{
		{"DELETE", storage.SignOptions{Method: http.MethodDelete, Expires: hour}},
		{"no method", storage.SignOptions{Expires: hour}},
		{"no expiry", storage.SignOptions{Method: http.MethodGet}},
		{"beyond 7 days", storage.SignOptions{Method: http.MethodGet, Expires: s.now().Add(8 * 24 * time.Hour)}},
		{"PUT without content type", storage.SignOptions{Method: http.MethodPut, Expires: hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if u, err := b.SignedURL(t.Context(), "k", tt.opts); err == nil {
				t.Errorf("SignedURL: got %v, want an error", u)
			}
		})
	}
}

func (s suite) testSignedGET(t *testing.T) {
	b := s.newBucket(t)
	const key, ct = "users/u/works/w/out put #1.png", "image/png"
	data := pattern(2000, 13)
	mustPut(t, b, key, data, ct)

	u := mustSign(t, b, key, http.MethodGet, "", s.now().Add(time.Hour))
	status, header, body := s.do(t, http.MethodGet, u, nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET: got status %v, want %v (body %q)", status, http.StatusOK, head(body))
	}
	if got := header.Get("Content-Type"); got != ct {
		t.Errorf("Content-Type: got %v, want %v", got, ct)
	}
	if !bytes.Equal(body, data) {
		t.Errorf("body: got %d bytes, want the %d put", len(body), len(data))
	}
}

func (s suite) testSignedGETMissing(t *testing.T) {
	b := s.newBucket(t)
	u := mustSign(t, b, "not/there.png", http.MethodGet, "", s.now().Add(time.Hour))
	if status, _, _ := s.do(t, http.MethodGet, u, nil, nil); status != http.StatusNotFound {
		t.Errorf("GET of a missing object: got status %v, want %v", status, http.StatusNotFound)
	}
}

func (s suite) testSignedPUT(t *testing.T) {
	ctx := t.Context()
	b := s.newBucket(t)
	const key, ct = "users/u/uploads/photo.jpg", "image/jpeg"
	data := pattern(5000, 14)

	u := mustSign(t, b, key, http.MethodPut, ct, s.now().Add(time.Hour))
	status, _, body := s.do(t, http.MethodPut, u, bytes.NewReader(data), http.Header{"Content-Type": {ct}})
	if status < 200 || status > 299 {
		t.Fatalf("PUT: got status %v, want 2xx (body %q)", status, head(body))
	}
	stat, err := b.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat after PUT: %v", err)
	}
	checkInfo(t, "Stat", stat, key, int64(len(data)), ct)
	got, _ := mustRead(t, b, key, 0, -1)
	if !bytes.Equal(got, data) {
		t.Errorf("Open after PUT: got %d bytes, want the %d uploaded", len(got), len(data))
	}
}

// testSignedURLExpired signs a URL that expires in a second and waits it out,
// rather than signing one already expired: GCS computes a lifetime from the
// expiry, and a negative one may be refused at signing time. The margin
// covers GCS's clock running behind ours.
func (s suite) testSignedURLExpired(t *testing.T) {
	if !s.opts.SignatureEnforced {
		t.Skip("the server behind fetch does not enforce signatures")
	}
	b := s.newBucket(t)
	const key = "expiring.txt"
	mustPut(t, b, key, pattern(10, 15), "text/plain")
	expires := s.now().Add(time.Second)
	getURL := mustSign(t, b, key, http.MethodGet, "", expires)
	putURL := mustSign(t, b, key, http.MethodPut, "text/plain", expires)
	s.wait(expires.Sub(s.now()) + 1500*time.Millisecond)

	status, _, _ := s.do(t, http.MethodGet, getURL, nil, nil)
	s.checkRefused(t, "GET with an expired URL", status)
	status, _, _ = s.do(t, http.MethodPut, putURL, strings.NewReader("new"), http.Header{"Content-Type": {"text/plain"}})
	s.checkRefused(t, "PUT with an expired URL", status)
	if stat, err := b.Stat(t.Context(), key); err != nil || stat.Size != 10 {
		t.Errorf("object after the refused PUT: got %+v, %v, want the original 10 bytes", stat, err)
	}
}

func (s suite) testSignedURLTampered(t *testing.T) {
	if !s.opts.SignatureEnforced {
		t.Skip("the server behind fetch does not enforce signatures")
	}
	b := s.newBucket(t)
	const mine, theirs = "users/a/mine.txt", "users/b/theirs.txt"
	mustPut(t, b, mine, pattern(10, 16), "text/plain")
	mustPut(t, b, theirs, pattern(20, 17), "text/plain")
	hour := s.now().Add(time.Hour)
	getURL := mustSign(t, b, mine, http.MethodGet, "", hour)
	putURL := mustSign(t, b, "users/a/upload.png", http.MethodPut, "image/png", hour)
	png := http.Header{"Content-Type": {"image/png"}}

	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
	}{
		{"signature flipped", http.MethodGet, flipSignature(t, getURL), nil},
		{"signature removed", http.MethodGet, removeSignature(t, getURL), nil},
		{"another key", http.MethodGet, replaceKey(t, getURL, mine, theirs), nil},
		{"PUT with a GET URL", http.MethodPut, getURL, http.Header{"Content-Type": {"text/plain"}}},
		{"PUT signature flipped", http.MethodPut, flipSignature(t, putURL), png},
		{"PUT another content type", http.MethodPut, putURL, http.Header{"Content-Type": {"text/html"}}},
		{"PUT without content type", http.MethodPut, putURL, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == http.MethodPut {
				body = strings.NewReader("<script>alert(1)</script>")
			}
			status, _, _ := s.do(t, tt.method, tt.url, body, tt.header)
			s.checkRefused(t, tt.name, status)
		})
	}

	ctx := t.Context()
	if stat, err := b.Stat(ctx, mine); err != nil || stat.Size != 10 || stat.ContentType != "text/plain" {
		t.Errorf("object after refused PUTs: got %+v, %v, want the original", stat, err)
	}
	if _, err := b.Stat(ctx, "users/a/upload.png"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat of the refused upload: got %v, want %v", err, storage.ErrNotFound)
	}
}

// do calls fetch and returns the response's status, header and whole body.
func (s suite) do(t *testing.T, method, u string, body io.Reader, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	resp := s.fetch(t, method, u, body, header)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, b
}

func (s suite) checkRefused(t *testing.T, what string, status int) {
	t.Helper()
	switch {
	case s.opts.RefusedStatus != 0 && status != s.opts.RefusedStatus:
		t.Errorf("%s: got status %v, want %v", what, status, s.opts.RefusedStatus)
	case status >= 200 && status <= 299:
		t.Errorf("%s: got status %v, want a refusal", what, status)
	}
}

func mustPut(t *testing.T, b storage.Bucket, key string, data []byte, ct string) storage.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, bytes.NewReader(data), storage.PutOptions{ContentType: ct})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func mustRead(t *testing.T, b storage.Bucket, key string, offset, length int64) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := b.Open(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return data, info
}

func mustSign(t *testing.T, b storage.Bucket, key, method, ct string, expires time.Time) string {
	t.Helper()
	u, err := b.SignedURL(t.Context(), key, storage.SignOptions{Method: method, Expires: expires, ContentType: ct})
	if err != nil {
		t.Fatalf("SignedURL(%q, %s): %v", key, method, err)
	}
	return u
}

func checkInfo(t *testing.T, what string, info storage.ObjectInfo, key string, size int64, ct string) {
	t.Helper()
	if info.Key != key || info.Size != size || info.ContentType != ct {
		t.Errorf("%s: got key %q, size %v, type %q, want %q, %v, %q", what, info.Key, info.Size, info.ContentType, key, size, ct)
	}
	if info.ETag == "" {
		t.Errorf("%s ETag: got empty, want one", what)
	}
	if info.Updated.IsZero() {
		t.Errorf("%s Updated: got zero, want a time", what)
	}
}

func checkOpenInfo(t *testing.T, info, stat storage.ObjectInfo) {
	t.Helper()
	if info.Key != stat.Key || info.Size != stat.Size || info.ContentType != stat.ContentType {
		t.Errorf("Open info: got %q, %v, %q, want Stat's %q, %v, %q", info.Key, info.Size, info.ContentType, stat.Key, stat.Size, stat.ContentType)
	}
	if info.ETag != "" && info.ETag != stat.ETag {
		t.Errorf("Open ETag: got %v, want Stat's %v", info.ETag, stat.ETag)
	}
}

// pattern returns n bytes that differ from one seed to the next, so that a
// mix-up of objects or offsets shows.
func pattern(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func head(b []byte) []byte {
	return b[:min(len(b), 16)]
}

// signatureParam finds the query parameter that carries the signature
// (X-Signature, X-Goog-Signature, …) without knowing the scheme.
func signatureParam(t *testing.T, q url.Values) string {
	t.Helper()
	for name := range q {
		if strings.Contains(strings.ToLower(name), "signature") {
			return name
		}
	}
	t.Fatalf("no signature parameter among %v", q)
	return ""
}

// flipSignature changes one character in the middle of the signature: the
// last characters of unpadded base64 may carry only padding bits, which a
// decoder can ignore. The replacement stays in both the hex and the base64url
// alphabet so that the signature still parses and only its check fails.
func flipSignature(t *testing.T, raw string) string {
	t.Helper()
	u := mustParse(t, raw)
	q := u.Query()
	name := signatureParam(t, q)
	sig := []byte(q.Get(name))
	if len(sig) == 0 {
		t.Fatalf("empty signature in %s", raw)
	}
	i := len(sig) / 2
	if sig[i] == '0' {
		sig[i] = '1'
	} else {
		sig[i] = '0'
	}
	q.Set(name, string(sig))
	u.RawQuery = q.Encode()
	return u.String()
}

func removeSignature(t *testing.T, raw string) string {
	t.Helper()
	u := mustParse(t, raw)
	q := u.Query()
	q.Del(signatureParam(t, q))
	u.RawQuery = q.Encode()
	return u.String()
}

func replaceKey(t *testing.T, raw, from, to string) string {
	t.Helper()
	u := mustParse(t, raw)
	if !strings.HasSuffix(u.Path, "/"+from) {
		t.Fatalf("URL path %q does not end with the key %q", u.Path, from)
	}
	u.Path = strings.TrimSuffix(u.Path, from) + to
	u.RawPath = ""
	return u.String()
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	return u
}

package local

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	client := &http.Client{Timeout: time.Minute}
	fetch := func(t *testing.T, method, url string, body io.Reader, header http.Header) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, body)
		if err != nil {
			t.Fatalf("building %s %s: %v", method, url, err)
		}
		if header != nil {
			req.Header = header.Clone()
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return resp
	}
	clk := clock.NewFake(time.Now())
	newBucket := func(t *testing.T) storage.Bucket {
		b, _ := serve(t, func(b *Bucket) { b.now = clk.Now })
		return b
	}
	storagetest.Run(t, newBucket, fetch, storagetest.Options{SignatureEnforced: true, RefusedStatus: http.StatusForbidden, Clock: clk})
}

// serve returns a Bucket in a fresh folder and the test server its Handler
// is mounted on, at /blobs/ as in the service. setup, if not nil, adjusts
// the Bucket before the server can reach it.
func serve(t *testing.T, setup func(*Bucket)) (*Bucket, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b, err := New(Config{
		Dir:         t.TempDir(),
		SigningKey:  []byte("0123456789abcdef0123456789abcdef"),
		BaseURL:     srv.URL + "/blobs",
		MaxPutBytes: 1 << 20,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if setup != nil {
		setup(b)
	}
	mux.Handle("/blobs/", b.Handler())
	return b, srv
}

func newBucket(t *testing.T) *Bucket {
	t.Helper()
	b, err := New(Config{Dir: t.TempDir(), SigningKey: make([]byte, 32), BaseURL: "http://localhost:8080/blobs", MaxPutBytes: 1 << 20})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNew(t *testing.T) {
	key := make([]byte, 32)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"valid", Config{Dir: "d", SigningKey: key, BaseURL: "http://localhost:8080/blobs", MaxPutBytes: 1}, true},
		{"valid with trailing slash", Config{Dir: "d", SigningKey: key, BaseURL: "https://example.com/blobs/", MaxPutBytes: 1}, true},
		{"no folder", Config{SigningKey: key, BaseURL: "http://localhost/blobs", MaxPutBytes: 1}, false},
		{"short key", Config{Dir: "d", SigningKey: key[:31], BaseURL: "http://localhost/blobs", MaxPutBytes: 1}, false},
		{"no max", Config{Dir: "d", SigningKey: key, BaseURL: "http://localhost/blobs"}, false},
		{"relative URL", Config{Dir: "d", SigningKey: key, BaseURL: "/blobs", MaxPutBytes: 1}, false},
		{"ftp URL", Config{Dir: "d", SigningKey: key, BaseURL: "ftp://localhost/blobs", MaxPutBytes: 1}, false},
		{"URL with query", Config{Dir: "d", SigningKey: key, BaseURL: "http://localhost/blobs?x=1", MaxPutBytes: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Dir != "" {
				tt.cfg.Dir = filepath.Join(t.TempDir(), tt.cfg.Dir)
			}
			_, err := New(tt.cfg)
			if got := err == nil; got != tt.ok {
				t.Errorf("New succeeded: got %v, want %v (err %v)", got, tt.ok, err)
			}
		})
	}
}

// TestResolve calls the path function directly, as a caller that forgot
// storage.ValidKey would: nothing may lead outside the root.
func TestResolve(t *testing.T) {
	root := filepath.Join(t.TempDir(), "objects")
	tests := []struct {
		key  string
		want string // relative to root; "" means refused
	}{
		{"a/b.png", "a/b.png"},
		{"users/x/works/y", "users/x/works/y"},
		{"/etc/passwd", ""},
		{"a/../b", "b"},
		{"..", ""},
		{"../x", ""},
		{"../objects2/x", ""},
		{"a/../../x", ""},
		{"a/../../objects/x", ""},
		{".", ""},
		{"a/..", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := resolve(root, tt.key)
			if tt.want == "" {
				if err == nil {
					t.Errorf("resolve(%q): got %v, want an error", tt.key, got)
				}
				return
			}
			if want := filepath.Join(root, filepath.FromSlash(tt.want)); err != nil || got != want {
				t.Errorf("resolve(%q): got %v, %v, want %v", tt.key, got, err, want)
			}
		})
	}
}

func TestETagIsSHA256(t *testing.T) {
	b := newBucket(t)
	data := []byte("hello, bucket")
	info, err := b.Put(t.Context(), "k", bytes.NewReader(data), storage.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	sum := sha256.Sum256(data)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; info.ETag != want {
		t.Errorf("ETag: got %v, want %v", info.ETag, want)
	}
}

func TestDefaultContentType(t *testing.T) {
	b := newBucket(t)
	info, err := b.Put(t.Context(), "k", strings.NewReader("x"), storage.PutOptions{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if want := "application/octet-stream"; info.ContentType != want {
		t.Errorf("ContentType: got %v, want %v", info.ContentType, want)
	}
}

// TestRecordNamesAreKeys puts objects whose keys look like the records kept
// for other objects; each must stay an object of its own.
func TestRecordNamesAreKeys(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	objects := []struct{ key, ct, data string }{
		{"a.png", "image/png", "png"},
		{"a.png.meta", "application/json", `{"contentType":"text/html"}`},
		{"tmp", "text/plain", "tmp"},
		{"meta/a.png", "text/plain", "meta"},
	}
	for _, o := range objects {
		if _, err := b.Put(ctx, o.key, strings.NewReader(o.data), storage.PutOptions{ContentType: o.ct}); err != nil {
			t.Fatalf("Put(%q): %v", o.key, err)
		}
	}
	for _, o := range objects {
		info, err := b.Stat(ctx, o.key)
		if err != nil || info.ContentType != o.ct || info.Size != int64(len(o.data)) {
			t.Errorf("Stat(%q): got %+v, %v, want type %v, size %v", o.key, info, err, o.ct, len(o.data))
		}
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	if want := []string{"a.png", "a.png.meta", "meta/a.png", "tmp"}; !slices.Equal(keys, want) {
		t.Errorf("List: got %q, want %q", keys, want)
	}
}

// TestFoldersAreReclaimed checks that deleting every object under a folder
// removes the folder, so that its name can become an object, and that
// until then Put refuses to turn a folder into an object.
func TestFoldersAreReclaimed(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	put := func(key string) error {
		_, err := b.Put(ctx, key, strings.NewReader("x"), storage.PutOptions{ContentType: "text/plain"})
		return err
	}
	if err := put("users/a/deep/x"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := put("users/a"); err == nil {
		t.Errorf("Put over a folder of objects: got nil error, want one")
	}
	if err := put("users/a/deep/x/y"); err == nil {
		t.Errorf("Put below an object: got nil error, want one")
	}
	if n, err := b.DeletePrefix(ctx, "users/a/"); err != nil || n != 1 {
		t.Fatalf("DeletePrefix: got %v, %v, want 1, nil", n, err)
	}
	if err := put("users/a"); err != nil {
		t.Errorf("Put where a folder was: got %v, want nil", err)
	}
	if err := b.Delete(ctx, "users/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, tree := range []string{b.objects, b.meta} {
		entries, err := os.ReadDir(tree)
		if err != nil || len(entries) != 0 {
			t.Errorf("%s after deleting everything: got %d entries, %v, want none", tree, len(entries), err)
		}
	}
}

// TestPutIsAtomic holds an upload half-way and checks what readers see
// meanwhile: the previous object, whole, or no object at all.
func TestPutIsAtomic(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	old := bytes.Repeat([]byte("o"), 1000)
	if _, err := b.Put(ctx, "kept", bytes.NewReader(old), storage.PutOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("Put: %v", err)
	}

	for _, key := range []string{"fresh", "kept"} {
		t.Run(key, func(t *testing.T) {
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				_, err := b.Put(ctx, key, pr, storage.PutOptions{ContentType: "image/png"})
				done <- err
			}()
			if _, err := pw.Write(bytes.Repeat([]byte("n"), 500)); err != nil {
				t.Fatalf("writing the first half: %v", err)
			}

			info, err := b.Stat(ctx, key)
			switch key {
			case "fresh":
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Stat during the upload: got %+v, %v, want %v", info, err, storage.ErrNotFound)
				}
			case "kept":
				rc, _, err := b.Open(ctx, key, 0, -1)
				if err != nil {
					t.Fatalf("Open during the upload: %v", err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(got, old) {
					t.Errorf("Open during the upload: got %q…, want the previous object", got[:min(len(got), 10)])
				}
			}

			if _, err := pw.Write(bytes.Repeat([]byte("n"), 500)); err != nil {
				t.Fatalf("writing the second half: %v", err)
			}
			pw.Close()
			if err := <-done; err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info, err := b.Stat(ctx, key); err != nil || info.Size != 1000 || info.ContentType != "image/png" {
				t.Errorf("Stat after the upload: got %+v, %v, want 1000 bytes of image/png", info, err)
			}
			if entries, _ := os.ReadDir(b.tmp); len(entries) != 0 {
				t.Errorf("tmp after the upload: got %d files, want none", len(entries))
			}
		})
	}
}

// TestFileWithoutRecord covers objects placed in the folder by hand: they
// are served as application/octet-stream under their content's hash.
func TestFileWithoutRecord(t *testing.T) {
	b := newBucket(t)
	data := []byte("dropped in by hand")
	path := filepath.Join(b.objects, "hand", "made.bin")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, info, err := b.Open(t.Context(), "hand/made.bin", 5, -1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	sum := sha256.Sum256(data)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; info.ETag != want || info.ContentType != "application/octet-stream" {
		t.Errorf("info: got %v, %v, want %v, application/octet-stream", info.ETag, info.ContentType, want)
	}
	if !bytes.Equal(got, data[5:]) {
		t.Errorf("read from 5: got %q, want %q", got, data[5:])
	}
}

func TestStaleUploadsRemoved(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, age := range map[string]time.Duration{"stale": 25 * time.Hour, "running": time.Minute} {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(Config{Dir: dir, SigningKey: make([]byte, 32), BaseURL: "http://localhost/blobs", MaxPutBytes: 1}); err != nil {
		t.Fatalf("New: %v", err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"running"}; !slices.Equal(names, want) {
		t.Errorf("tmp after New: got %q, want %q", names, want)
	}
}

func TestInvalidPrefix(t *testing.T) {
	b := newBucket(t)
	for _, prefix := range []string{"../", "a/../../", "a//", "/", "/etc/"} {
		t.Run(prefix, func(t *testing.T) {
			if infos, err := b.List(t.Context(), prefix); err == nil {
				t.Errorf("List(%q): got %v, want an error", prefix, infos)
			}
			if n, err := b.DeletePrefix(t.Context(), prefix); err == nil {
				t.Errorf("DeletePrefix(%q): got %v, want an error", prefix, n)
			}
		})
	}
}

package privacy

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cloudstorage "cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"google.golang.org/api/option"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/gcs"
	"github.com/fastimage/api/internal/storage/local"
)

// exportEnv is a privacy service over a fresh database and a bucket, with
// export workers running.
type exportEnv struct {
	db     *bun.DB
	svc    *Service
	bucket storage.Bucket
}

var discard = slog.New(slog.DiscardHandler)

func newExportEnv(t testing.TB, bucket storage.Bucket, workers bool, clk clock.Clock) *exportEnv {
	t.Helper()
	bdb := dbtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	bus := events.New(bdb, discard)
	public, _ := url.Parse("https://app.example.test")
	svc := New(bdb, mail.NewOutbox(bdb), bus, discard, Config{
		PublicURL: public, Lease: 10 * time.Second, PollInterval: 50 * time.Millisecond,
		Bucket: bucket, LinkKey: []byte("export-link-key-for-tests-0123456789"), Clock: clk,
	})
	svc.Handle(KindExport, svc.Export)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if workers {
			go bus.Run(ctx)
			svc.RunWorkers(ctx, "test", 1)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &exportEnv{db: bdb, svc: svc, bucket: bucket}
}

func localBucket(t testing.TB) storage.Bucket {
	t.Helper()
	b, err := local.New(local.Config{Dir: t.TempDir(), SigningKey: []byte("local-signing-key-0123456789abcdef"), BaseURL: "http://127.0.0.1:1/blobs", MaxPutBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var gcsBuckets atomic.Int64

// gcsBucket is a GCS bucket in an in-process fake-gcs-server.
func gcsBucket(t testing.TB) storage.Bucket {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatalf("starting fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	client, err := cloudstorage.NewClient(context.Background(), option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithoutAuthentication(), cloudstorage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	name := fmt.Sprintf("exports-%d", gcsBuckets.Add(1))
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyJSON, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": "signer@fastimage-test.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	b, err := gcs.New(context.Background(), gcs.Config{Bucket: name, Client: client, SigningKeyJSON: keyJSON, ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newUser adds a verified user (as sign-up and verification leave one)
// and returns them as an actor.
func (e *exportEnv) newUser(t testing.TB, email string) actor.Actor {
	t.Helper()
	var id uuid.UUID
	if err := e.db.NewRaw("INSERT INTO users (email, name, password_hash, email_verified_at) VALUES (?, 'Ada Export', 'argon2id$secret-hash', now()) RETURNING id", email).
		Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return actor.Actor{UserID: id, Role: actor.RoleUser, Verified: true, Email: email}
}

// addImages stores n random blobs of size bytes for the user, each an
// upload work with one source asset, written straight into the bucket
// from a generator (no blob is ever held in memory). It returns the
// assets' storage keys.
func (e *exportEnv) addImages(t testing.TB, user uuid.UUID, n int, size int64) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	for i := range n {
		workID, assetID := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
		key := storage.UserPrefix(user) + "works/" + workID.String() + "/source.png"
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(mrand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 7}), size), h)
		if _, err := e.bucket.Put(ctx, key, src, storage.PutOptions{ContentType: "image/png"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.ExecContext(ctx, "INSERT INTO works (id, user_id, kind, title) VALUES (?, ?, 'upload', ?)", workID, user, fmt.Sprintf("image %d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.ExecContext(ctx, `INSERT INTO assets (id, work_id, user_id, role, storage_key, content_type, bytes, width, height, sha256)
			VALUES (?, ?, ?, 'source', ?, 'image/png', ?, 1024, 1024, ?)`, assetID, workID, user, key, size, hex.EncodeToString(h.Sum(nil))); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	if _, err := e.db.ExecContext(ctx, "INSERT INTO storage_usage (user_id, used_bytes) VALUES (?, ?)", user, int64(n)*size); err != nil {
		t.Fatal(err)
	}
	return keys
}

// waitDone waits until the request ended and returns it.
func (e *exportEnv) waitDone(t testing.TB, id uuid.UUID) *Request {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var r Request
		if err := e.db.NewSelect().Model(&r).Where("id = ?", id).Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r.Status == StatusCompleted || r.Status == StatusRejected || r.Status == StatusCanceled {
			return &r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s still %s at %d%% after 2 minutes (error %v)", id, r.Status, r.Progress, deref(r.Error))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openExport copies the export's ZIP out of the bucket into a temporary
// file and opens it, checking it against the request's size and SHA-256.
func openExport(t testing.TB, bucket storage.Bucket, r *Request) *zip.Reader {
	t.Helper()
	if r.ResultKey == nil || r.ResultBytes == nil || r.ResultSHA256 == nil || r.ResultExpiresAt == nil {
		t.Fatalf("the completed export has no result: %+v", r)
	}
	rc, _, err := bucket.Open(context.Background(), *r.ResultKey, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(t.TempDir(), "export-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err != nil {
		t.Fatal(err)
	}
	if n != *r.ResultBytes || hex.EncodeToString(h.Sum(nil)) != *r.ResultSHA256 {
		t.Fatalf("the stored ZIP has %d bytes, SHA-256 %x; the request says %d, %s", n, h.Sum(nil), *r.ResultBytes, *r.ResultSHA256)
	}
	zr, err := zip.NewReader(f, n)
	if err != nil {
		t.Fatalf("the export is not a ZIP: %v", err)
	}
	return zr
}

// CheckManifest checks that manifest.json lists every other file of the
// ZIP, with its true size and SHA-256, and returns it.
func checkManifest(t testing.TB, zr *zip.Reader) Manifest {
	t.Helper()
	var m Manifest
	rc, err := zr.Open("manifest.json")
	if err != nil {
		t.Fatal("no manifest.json in the ZIP")
	}
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	rc.Close()
	if m.Format != "fastimage-data-export" || m.FormatVersion != ExportFormatVersion || m.GeneratedAt.IsZero() {
		t.Errorf("manifest header: %+v", m)
	}
	listed := map[string]ManifestEntry{}
	for _, e := range m.Files {
		listed[e.Name] = e
	}
	for _, f := range zr.File {
		if f.Name == "manifest.json" {
			continue
		}
		e, ok := listed[f.Name]
		if !ok {
			t.Errorf("%s is in the ZIP but not in the manifest", f.Name)
			continue
		}
		delete(listed, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc) // also checks the ZIP's CRC-32
		rc.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", f.Name, err)
		}
		if n != e.Bytes || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			t.Errorf("%s: %d bytes, SHA-256 %x; the manifest says %d, %s", f.Name, n, h.Sum(nil), e.Bytes, e.SHA256)
		}
	}
	for name := range listed {
		t.Errorf("the manifest lists %s, which is not in the ZIP", name)
	}
	return m
}

// exportedRows reads a JSON file of the ZIP: table → rows.
func exportedRows(t testing.TB, zr *zip.Reader, name string) map[string][]map[string]any {
	t.Helper()
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatalf("%s is not in the ZIP", name)
	}
	defer rc.Close()
	var out map[string][]map[string]any
	dec := json.NewDecoder(rc)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

// checkImages checks that every key's blob is in the ZIP under images/,
// byte for byte (by SHA-256, read from the bucket again).
func checkImages(t testing.TB, zr *zip.Reader, m Manifest, bucket storage.Bucket, user uuid.UUID, keys []string) {
	t.Helper()
	byName := map[string]ManifestEntry{}
	for _, e := range m.Files {
		byName[e.Name] = e
	}
	images := 0
	for _, e := range m.Files {
		if strings.HasPrefix(e.Name, "images/") {
			images++
		}
	}
	if images != len(keys) {
		t.Errorf("the ZIP holds %d images, want %d", images, len(keys))
	}
	for _, key := range keys {
		name := path.Join("images", strings.TrimPrefix(key, storage.UserPrefix(user)))
		e, ok := byName[name]
		if !ok {
			t.Errorf("image %s is not in the ZIP (as %s)", key, name)
			continue
		}
		rc, _, err := bucket.Open(context.Background(), key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, _ := io.Copy(h, rc)
		rc.Close()
		if n != e.Bytes || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			t.Errorf("image %s: the ZIP's copy differs from the blob", key)
		}
	}
}

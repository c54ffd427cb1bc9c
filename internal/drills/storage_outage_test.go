package drills

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/uuid"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// Object storage (GCS, through the real client, against fake-gcs-server)
// answers 503 to everything for a while, with generations running and
// users uploading: every generation still ends SUCCEEDED, charged once;
// an upload in the outage fails with a code a client can act on
// (UNAVAILABLE, not INTERNAL), and uploads succeed again once storage is
// back.
func TestDrillStorageOutage(t *testing.T) {
	t.Parallel()
	outage := span(3*time.Second, 10*time.Second)
	store := newFailingGCS(t)
	dbURL := dbtest.NewURL(t)
	vdb, err := db.Open(context.Background(), dbtest.Config(dbURL), "drills")
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	env := []string{"DATABASE_URL=" + dbURL, "STORAGE_EMULATOR_HOST=" + store.host}
	flags := settings(t.TempDir(), "--storage-backend", "gcs", "--gcs-bucket", store.bucket,
		"--gcs-credentials-file", store.keyFile, "--local-step-delay", "100ms", "--workers", "4")
	api := startServe(t, "api", env, flags...)
	u := signUp(t, newClient(api.url), vdb)
	if _, code := upload(t, u); code != "" {
		t.Fatalf("upload before the outage: %s", code)
	}

	ctx, stop := stopper(t)
	jobs := size(8, 24)
	var gens []string
	var fs []*follower
	for i := range jobs {
		id := u.mustSubmit(t, fmt.Sprintf("drill: storage outage %d", i))
		gens = append(gens, id)
		fs = append(fs, follow(ctx, id, u.api.token, func() string { return api.url }))
	}
	// Break storage while the jobs run, and upload through the outage.
	time.Sleep(300 * time.Millisecond)
	store.failing.Store(true)
	broke := time.Now()
	codes := map[string]int{}
	for time.Since(broke) < outage {
		_, code := upload(t, u)
		codes[code]++
		time.Sleep(200 * time.Millisecond)
	}
	store.failing.Store(false)
	healed := time.Now()
	t.Logf("storage answered %d requests 503 in %v", store.refused.Load(), outage)

	// Uploads work again at once.
	var firstUpload time.Duration
	waitFor(t, 30*time.Second, "an upload to succeed after the outage", func() bool {
		_, code := upload(t, u)
		firstUpload = time.Since(healed)
		return code == ""
	})
	if !eventually(2*time.Minute, func() bool {
		for _, f := range fs {
			if !f.finished() {
				return false
			}
		}
		return true
	}) {
		t.Errorf("after 2m some subscribers have not seen their generation end")
	}
	var lastEnd time.Time
	if err := vdb.NewRaw(`SELECT max(finished_at) FROM generations`).Scan(context.Background(), &lastEnd); err != nil {
		t.Fatal(err)
	}
	stop()

	keys := make([]uuid.UUID, len(gens))
	for i, g := range gens {
		keys[i] = generationKey(t, g)
	}
	a := auditGenerations(t, vdb, u.id, keys)
	lostRecv, recv := received(t, a, fs)
	failed := jobs - a.statuses["succeeded"]
	var uploads []string
	for code, n := range codes {
		if code == "" {
			code = "ok"
		}
		uploads = append(uploads, fmt.Sprintf("%d %s", n, code))
	}
	sort.Strings(uploads)
	for code := range codes {
		if code != "" && code != "UNAVAILABLE" {
			t.Errorf("an upload during the outage failed with %s, want UNAVAILABLE (a code that says: try again)", code)
		}
	}
	recovery := max(lastEnd.Sub(healed), firstUpload)
	report(t, fmt.Sprintf("storage 503s for %v (%d jobs)", outage, jobs), a.lost()+lostRecv+failed,
		fmt.Sprintf("%s; %s; uploads in the outage: %s; first upload after it in %v",
			a.summary(), recv, strings.Join(uploads, ", "), firstUpload.Round(time.Millisecond)), recovery)
}

// failingGCS is a fake-gcs-server behind a proxy that answers 503 to
// everything while failing is set.
type failingGCS struct {
	host    string // host:port for STORAGE_EMULATOR_HOST
	bucket  string
	keyFile string // a service-account key that signs URLs
	failing atomic.Bool
	refused atomic.Int64
}

func newFailingGCS(t *testing.T) *failingGCS {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatalf("starting fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	f := &failingGCS{bucket: "fastimage-drill"}
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: f.bucket})
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.failing.Load() {
			f.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":503,"message":"Service Unavailable (drill)","errors":[{"reason":"backendError"}]}}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.host = strings.TrimPrefix(front.URL, "http://")
	f.keyFile = filepath.Join(t.TempDir(), "signer.json")
	if err := os.WriteFile(f.keyFile, serviceAccountKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// serviceAccountKey is a throwaway service-account JSON key to sign URLs.
func serviceAccountKey(t *testing.T) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(map[string]string{
		"type":         "service_account",
		"client_email": "signer@fastimage-drill.iam.gserviceaccount.com",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

var (
	pngOnce sync.Once
	pngData []byte
)

// smallPNG is a 64×64 PNG.
func smallPNG() []byte {
	pngOnce.Do(func() {
		img := image.NewRGBA(image.Rect(0, 0, 64, 64))
		for x := range 64 {
			for y := range 64 {
				img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 4), 128, 255})
			}
		}
		var b bytes.Buffer
		_ = png.Encode(&b, img)
		pngData = b.Bytes()
	})
	return pngData
}

// upload sends uploadImage as a GraphQL multipart request and returns the
// work's id, or the error code ("" on success; TRANSPORT when no answer
// came).
func upload(t *testing.T, u user) (string, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("operations", `{"query":"mutation($file: Upload!) { uploadImage(input: {file: $file, title: \"drill\"}) { work { id } } }","variables":{"file":null}}`)
	_ = mw.WriteField("map", `{"0":["variables.file"]}`)
	fw, err := mw.CreateFormFile("0", "drill.png")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(smallPNG())
	_ = mw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.api.base+"/graphql", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("GraphQL-Preflight", "1")
	req.Header.Set("Apollo-Require-Preflight", "true")
	r, err := u.api.send(req)
	if err != nil {
		return "", "TRANSPORT"
	}
	if len(r.Errors) > 0 {
		return "", r.code()
	}
	var out struct {
		UploadImage struct{ Work struct{ ID string } }
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("uploadImage: %v", err)
	}
	return out.UploadImage.Work.ID, ""
}

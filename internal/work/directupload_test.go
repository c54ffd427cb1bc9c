package work_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/local"
	"github.com/fastimage/api/internal/work"
)

// directGallery is newGallery with a quota of quota bytes, whose blobs
// are served as the app serves them: signed PUTs pass the service's guard.
func directGallery(t *testing.T, quota int64) (*bun.DB, *local.Bucket, http.Handler, *work.Service) {
	t.Helper()
	db := dbtest.New(t)
	bucket, err := local.New(local.Config{
		Dir: t.TempDir(), SigningKey: []byte("test-signing-key-0123456789abcdef"),
		BaseURL: "http://localhost/blobs", MaxPutBytes: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := work.New(db, bucket, work.Config{
		MaxUploadBytes: 1 << 20, MaxPixels: 40_000_000, QuotaBytes: quota, URLTTL: time.Hour, Retention: time.Hour,
	})
	return db, bucket, bucket.HandlerAccepting(svc.AcceptsPut), svc
}

// put sends body to a signed upload URL as a client would and returns the
// status and the error code of the answer ("" for none).
func put(t *testing.T, h http.Handler, up *work.DirectUpload, body io.Reader, length int64) (int, apperr.Code) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPut, up.URL, body)
	req.ContentLength = length
	req.Header.Set("Content-Type", up.ContentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code/100 == 2 {
		return rec.Code, ""
	}
	var ans struct {
		Errors []struct {
			Extensions struct{ Code apperr.Code }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || len(ans.Errors) != 1 {
		t.Fatalf("PUT answered %d with %q, want a GraphQL-shaped error", rec.Code, rec.Body)
	}
	return rec.Code, ans.Errors[0].Extensions.Code
}

func usedBytes(t *testing.T, svc *work.Service, a actor.Actor) int64 {
	t.Helper()
	u, err := svc.UsageOf(context.Background(), a, a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	return u.UsedBytes
}

func staged(t *testing.T, bucket storage.Bucket, a actor.Actor, id uuid.UUID) bool {
	t.Helper()
	_, err := bucket.Stat(context.Background(), storage.UserPrefix(a.UserID)+"uploads/"+id.String())
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// A signed PUT URL holds the client to the size it declared: a larger body
// is refused, whether it says its length or not, and nothing stays; a file
// larger than declared that reached storage anyway is refused on
// completion.
func TestDirectUploadHoldsTheDeclaredSize(t *testing.T) {
	t.Parallel()
	db, bucket, h, svc := directGallery(t, 50<<20)
	ctx := context.Background()
	a := actor.Actor{UserID: newUser(t, db)}
	png := imagingtest.PNG(32, 32)
	big := append(bytes.Clone(png), make([]byte, 200<<10)...)
	up, err := svc.CreateUpload(ctx, a, "x.png", "image/png", int64(len(png)), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		length int64
	}{{"with its length", int64(len(big))}, {"chunked", -1}} {
		status, code := put(t, h, up, bytes.NewReader(big), tt.length)
		if status != http.StatusRequestEntityTooLarge || code != apperr.PayloadTooLarge {
			t.Errorf("PUT of %d bytes for %d declared, %s: got %d %s, want 413 PAYLOAD_TOO_LARGE", len(big), len(png), tt.name, status, code)
		}
		if staged(t, bucket, a, up.ID) {
			t.Errorf("the refused PUT (%s) left a file", tt.name)
		}
	}

	// What GCS would refuse by its signed Content-Length, and what was
	// stored by any other way, is refused on completion all the same.
	if _, err := bucket.Put(ctx, storage.UserPrefix(a.UserID)+"uploads/"+up.ID.String(), bytes.NewReader(big), storage.PutOptions{ContentType: "image/png"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteUpload(ctx, a, up.ID); apperr.CodeOf(err) != apperr.PayloadTooLarge {
		t.Errorf("completing a file larger than declared: got %v, want PAYLOAD_TOO_LARGE", err)
	}
	if staged(t, bucket, a, up.ID) {
		t.Error("the refused completion left the staged file")
	}
}

// Open uploads reserve their declared size in the quota: eight uploads that
// each declare a MiB cannot stage more than the quota between them, and
// the usage shows what they hold.
func TestOpenUploadsCountAgainstTheQuota(t *testing.T) {
	t.Parallel()
	const quota = 3 << 20
	db, _, _, svc := directGallery(t, quota)
	ctx := context.Background()
	a := actor.Actor{UserID: newUser(t, db)}
	for i := range 8 {
		_, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 1<<20, "")
		switch {
		case i < 3 && err != nil:
			t.Fatalf("upload %d of 1 MiB within a 3 MiB quota: %v", i+1, err)
		case i >= 3 && apperr.CodeOf(err) != work.QuotaExceeded:
			t.Fatalf("upload %d of 1 MiB past a 3 MiB quota held by open uploads: got %v, want QUOTA_EXCEEDED", i+1, err)
		}
	}
	if got := usedBytes(t, svc, a); got != quota {
		t.Errorf("usage with three open uploads: got %d, want %d", got, quota)
	}
	png := imagingtest.PNG(8, 8)
	if _, err := svc.Upload(ctx, a, work.UploadInput{File: bytes.NewReader(png), Size: int64(len(png))}); apperr.CodeOf(err) != work.QuotaExceeded {
		t.Errorf("an upload while open uploads hold the quota: got %v, want QUOTA_EXCEEDED", err)
	}
}

// Completing an upload voids its URL: a second PUT is refused and leaves
// nothing, and the quota holds the work instead of the reservation.
func TestPutAfterCompletionIsRefused(t *testing.T) {
	t.Parallel()
	db, bucket, h, svc := directGallery(t, 50<<20)
	ctx := context.Background()
	a := actor.Actor{UserID: newUser(t, db)}
	png := imagingtest.PNG(32, 32)
	up, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	if status, code := put(t, h, up, bytes.NewReader(png), int64(len(png))); status != http.StatusOK {
		t.Fatalf("PUT: got %d %s, want 200", status, code)
	}
	if _, err := svc.CompleteUpload(ctx, a, up.ID); err != nil {
		t.Fatal(err)
	}
	usage := usedBytes(t, svc, a)
	if usage <= 0 || usage >= 1<<20 {
		t.Errorf("usage after completion: got %d, want the work's bytes, not the 1 MiB reserved", usage)
	}
	status, code := put(t, h, up, bytes.NewReader(make([]byte, 512<<10)), 512<<10)
	if status != http.StatusForbidden || code != apperr.Forbidden {
		t.Errorf("PUT after completion: got %d %s, want 403 FORBIDDEN", status, code)
	}
	if staged(t, bucket, a, up.ID) {
		t.Error("the PUT after completion left a file")
	}
	if got := usedBytes(t, svc, a); got != usage {
		t.Errorf("usage after the refused PUT: got %d, want %d", got, usage)
	}
}

// An upload never completed gives its reservation back when the cleanup
// forgets it.
func TestStaleUploadCleanupReleasesTheReservation(t *testing.T) {
	t.Parallel()
	db, bucket, h, svc := directGallery(t, 50<<20)
	ctx := context.Background()
	a := actor.Actor{UserID: newUser(t, db)}
	png := imagingtest.PNG(32, 32)
	up, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 4096, "")
	if err != nil {
		t.Fatal(err)
	}
	if status, code := put(t, h, up, bytes.NewReader(png), int64(len(png))); status != http.StatusOK {
		t.Fatalf("PUT: got %d %s, want 200", status, code)
	}
	if got := usedBytes(t, svc, a); got != 4096 {
		t.Fatalf("usage with an open upload of 4096 bytes: got %d, want 4096", got)
	}
	if _, err := db.NewRaw("UPDATE uploads SET expires_at = now() - interval '2 days' WHERE id = ?", up.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := svc.CleanStaleUploads(ctx)
	if err != nil || n != 1 {
		t.Fatalf("CleanStaleUploads: got %d, %v; want 1 forgotten", n, err)
	}
	if got := usedBytes(t, svc, a); got != 0 {
		t.Errorf("usage after the cleanup: got %d, want 0", got)
	}
	if staged(t, bucket, a, up.ID) {
		t.Error("the cleanup left the staged file")
	}
	if _, err := svc.CompleteUpload(ctx, a, up.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("completing a forgotten upload: got %v, want NOT_FOUND", err)
	}
}

// A plan's quota (user_limits, written by billing while the plan is in
// force) raises the user's quota; a plan never lowers it; without the row
// the setting applies again.
func TestPlanQuotaRaisesTheQuota(t *testing.T) {
	t.Parallel()
	const quota = 2 << 20
	db, _, _, svc := directGallery(t, quota)
	ctx := context.Background()
	a := actor.Actor{UserID: newUser(t, db)}
	for range 2 {
		if _, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 1<<20, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 1<<20, ""); apperr.CodeOf(err) != work.QuotaExceeded {
		t.Fatalf("past the default quota: got %v, want QUOTA_EXCEEDED", err)
	}
	setPlan := func(bytes int64) {
		t.Helper()
		if _, err := db.NewRaw(`INSERT INTO user_limits (user_id, plan_code, storage_quota_bytes) VALUES (?, 'pro', ?)
			ON CONFLICT (user_id) DO UPDATE SET storage_quota_bytes = EXCLUDED.storage_quota_bytes`, a.UserID, bytes).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	setPlan(4 << 20)
	if u, err := svc.UsageOf(ctx, a, a.UserID); err != nil || u.QuotaBytes != 4<<20 {
		t.Fatalf("quota with a plan of 4 MiB: %+v, %v", u, err)
	}
	for range 2 {
		if _, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 1<<20, ""); err != nil {
			t.Fatalf("within the plan's quota: %v", err)
		}
	}
	_, err := svc.CreateUpload(ctx, a, "x.png", "image/png", 1<<20, "")
	if apperr.CodeOf(err) != work.QuotaExceeded || !strings.Contains(err.Error(), "4 MB") {
		t.Fatalf("past the plan's quota: got %v, want QUOTA_EXCEEDED naming 4 MB", err)
	}
	setPlan(1 << 20)
	if u, _ := svc.UsageOf(ctx, a, a.UserID); u.QuotaBytes != quota {
		t.Errorf("a plan below the setting: quota %d, want the setting's %d", u.QuotaBytes, quota)
	}
	if _, err := db.NewRaw("DELETE FROM user_limits WHERE user_id = ?", a.UserID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if u, _ := svc.UsageOf(ctx, a, a.UserID); u.QuotaBytes != quota {
		t.Errorf("after the plan ended: quota %d, want %d", u.QuotaBytes, quota)
	}
}

package work_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/storage/local"
	"github.com/fastimage/api/internal/work"
)

func newUser(t testing.TB, db *bun.DB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	email := fmt.Sprintf("u%s@example.com", uuid.NewString()[:8])
	if err := db.NewRaw("INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id", email).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// newGallery returns a works service on a fresh database with its blobs in a
// folder of the test's.
func newGallery(t testing.TB) (*bun.DB, *local.Bucket, *work.Service) {
	t.Helper()
	db := dbtest.New(t)
	bucket, err := local.New(local.Config{
		Dir: t.TempDir(), SigningKey: []byte("test-signing-key-0123456789abcdef"),
		BaseURL: "http://localhost/blobs", MaxPutBytes: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, bucket, work.New(db, bucket, work.Config{
		MaxUploadBytes: 1 << 20, MaxPixels: 40_000_000, QuotaBytes: 50 << 20, URLTTL: time.Hour, Retention: 7 * 24 * time.Hour,
	})
}

// mustUpload stores a real PNG as a new work of the actor's.
func mustUpload(t testing.TB, svc *work.Service, a actor.Actor, title string) *work.Work {
	t.Helper()
	png := imagingtest.PNG(64, 48)
	w, err := svc.Upload(context.Background(), a, work.UploadInput{File: bytes.NewReader(png), Size: int64(len(png)), Title: title})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// stagedUpload opens a direct upload for the actor and PUTs a real PNG to
// its signed URL through the bucket's handler, as a client would.
func stagedUpload(t testing.TB, svc *work.Service, bucket *local.Bucket, a actor.Actor) uuid.UUID {
	t.Helper()
	png := imagingtest.PNG(32, 32)
	up, err := svc.CreateUpload(context.Background(), a, "big.png", "image/png", int64(len(png)), "Direct")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPut, up.URL, bytes.NewReader(png))
	req.Header.Set("Content-Type", up.ContentType)
	rec := httptest.NewRecorder()
	bucket.Handler().ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		t.Fatalf("PUT to the upload URL: got %d %s, want 2xx", rec.Code, rec.Body)
	}
	return up.ID
}

// workOf reads a work's row as it is, deleted or not, bypassing the service.
func workOf(t testing.TB, db *bun.DB, id uuid.UUID) work.Work {
	t.Helper()
	var w work.Work
	if err := db.NewSelect().Model(&w).Where("id = ?", id).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestAnotherUsersWorksAreRefused calls every entry point of My Works with
// user B's actor on user A's works: each is refused inside the domain (a
// work of A's is NOT_FOUND to B, A's account-wide reads FORBIDDEN) and
// nothing of A's changes; A's own calls then succeed.
func TestAnotherUsersWorksAreRefused(t *testing.T) {
	t.Parallel()
	db, bucket, svc := newGallery(t)
	ctx := context.Background()
	userA, userB := newUser(t, db), newUser(t, db)
	a, b := actor.Actor{UserID: userA}, actor.Actor{UserID: userB}

	kept := mustUpload(t, svc, a, "Kept")
	binned := mustUpload(t, svc, a, "Binned")
	if _, err := svc.Delete(ctx, a, []uuid.UUID{binned.ID}); err != nil {
		t.Fatal(err)
	}
	uploadID := stagedUpload(t, svc, bucket, a)
	mustUpload(t, svc, b, "B's own") // B has works too: a leak would not read as empty

	refused := []struct {
		name string
		call func() error
		want apperr.Code
	}{
		{"Get", func() error { _, err := svc.Get(ctx, b, kept.ID); return err }, apperr.NotFound},
		{"Rename", func() error { _, err := svc.Rename(ctx, b, kept.ID, "Mine now"); return err }, apperr.NotFound},
		{"Delete", func() error { _, err := svc.Delete(ctx, b, []uuid.UUID{kept.ID}); return err }, apperr.NotFound},
		{"Restore", func() error { _, err := svc.Restore(ctx, b, []uuid.UUID{binned.ID}); return err }, apperr.NotFound},
		{"CompleteUpload", func() error { _, err := svc.CompleteUpload(ctx, b, uploadID); return err }, apperr.NotFound},
		{"List", func() error { _, err := svc.List(ctx, b, userA, work.Filter{}, 10, nil); return err }, apperr.Forbidden},
		{"UsageOf", func() error { _, err := svc.UsageOf(ctx, b, userA); return err }, apperr.Forbidden},
	}
	for _, tc := range refused {
		t.Run("B "+tc.name, func(t *testing.T) {
			if got := apperr.CodeOf(tc.call()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("B WorksByIDs", func(t *testing.T) {
		works, err := svc.WorksByIDs(ctx, b, []uuid.UUID{kept.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(works) != 0 {
			t.Errorf("got %d works, want none", len(works))
		}
	})
	t.Run("B ImagesByWorkIDs", func(t *testing.T) {
		imgs, err := svc.ImagesByWorkIDs(ctx, b, []uuid.UUID{kept.ID, binned.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) != 0 {
			t.Errorf("got images of %d works, want none", len(imgs))
		}
	})
	t.Run("nothing of A's changed", func(t *testing.T) {
		if w := workOf(t, db, kept.ID); w.Title != "Kept" || w.DeletedAt != nil {
			t.Errorf("kept work: got title %q, deleted %v; want %q, not deleted", w.Title, w.DeletedAt, "Kept")
		}
		if w := workOf(t, db, binned.ID); w.DeletedAt == nil {
			t.Errorf("binned work: got restored, want still in the bin")
		}
		var bWorks int
		if err := db.NewRaw("SELECT count(*) FROM works WHERE user_id = ?", userB).Scan(ctx, &bWorks); err != nil {
			t.Fatal(err)
		}
		if bWorks != 1 {
			t.Errorf("B has %d works, want 1 (the completed upload must not become B's)", bWorks)
		}
	})

	t.Run("A Get", func(t *testing.T) {
		w, err := svc.Get(ctx, a, kept.ID)
		if err != nil {
			t.Fatal(err)
		}
		if w.ID != kept.ID || w.UserID != userA {
			t.Errorf("got work %v of %v, want %v of %v", w.ID, w.UserID, kept.ID, userA)
		}
	})
	t.Run("A Rename", func(t *testing.T) {
		w, err := svc.Rename(ctx, a, kept.ID, "Renamed")
		if err != nil {
			t.Fatal(err)
		}
		if w.Title != "Renamed" {
			t.Errorf("got title %q, want %q", w.Title, "Renamed")
		}
	})
	t.Run("A WorksByIDs", func(t *testing.T) {
		works, err := svc.WorksByIDs(ctx, a, []uuid.UUID{kept.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(works) != 1 || works[0].ID != kept.ID {
			t.Errorf("got %v, want only %v", works, kept.ID)
		}
	})
	t.Run("A ImagesByWorkIDs", func(t *testing.T) {
		imgs, err := svc.ImagesByWorkIDs(ctx, a, []uuid.UUID{kept.ID})
		if err != nil {
			t.Fatal(err)
		}
		got := imgs[kept.ID]
		if len(got) != 1 || got[0].Role != work.RoleSource || got[0].Width != 64 || len(got[0].Thumbnails) == 0 {
			t.Errorf("got %v, want one 64-pixel-wide source image with thumbnails", got)
		}
	})
	t.Run("A List", func(t *testing.T) {
		page, err := svc.List(ctx, a, userA, work.Filter{}, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if page.TotalCount != 1 || len(page.Items) != 1 || page.Items[0].ID != kept.ID {
			t.Errorf("got %d works (%v), want only %v", page.TotalCount, page.Items, kept.ID)
		}
	})
	t.Run("A UsageOf", func(t *testing.T) {
		u, err := svc.UsageOf(ctx, a, userA)
		if err != nil {
			t.Fatal(err)
		}
		// Works' images, and the size an open direct upload reserves.
		var want int64
		if err := db.NewRaw(`SELECT (SELECT coalesce(sum(bytes), 0) FROM assets WHERE user_id = ?0)
			+ (SELECT coalesce(sum(declared_bytes), 0) FROM uploads WHERE user_id = ?0 AND completed_at IS NULL)`, userA).Scan(ctx, &want); err != nil {
			t.Fatal(err)
		}
		if u.UsedBytes != want || want == 0 {
			t.Errorf("got %d bytes used, want %d (not zero)", u.UsedBytes, want)
		}
	})
	t.Run("A Restore", func(t *testing.T) {
		works, err := svc.Restore(ctx, a, []uuid.UUID{binned.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(works) != 1 || works[0].ID != binned.ID || works[0].DeletedAt != nil {
			t.Errorf("got %v, want %v restored", works, binned.ID)
		}
	})
	t.Run("A Delete", func(t *testing.T) {
		if _, err := svc.Delete(ctx, a, []uuid.UUID{kept.ID}); err != nil {
			t.Fatal(err)
		}
		if w := workOf(t, db, kept.ID); w.DeletedAt == nil {
			t.Error("got not deleted, want in the bin")
		}
	})
	t.Run("A CompleteUpload", func(t *testing.T) {
		w, err := svc.CompleteUpload(ctx, a, uploadID)
		if err != nil {
			t.Fatal(err)
		}
		if w.UserID != userA || w.Title != "Direct" {
			t.Errorf("got work %q of %v, want %q of %v", w.Title, w.UserID, "Direct", userA)
		}
	})
}

package work_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/work"
)

// refusing is a bucket that does not take new objects, as object storage
// answering 503 does once the client's own retries run out.
type refusing struct{ storage.Bucket }

func (refusing) Put(_ context.Context, key string, _ io.Reader, _ storage.PutOptions) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, fmt.Errorf("put %q: %w: 503", key, storage.ErrUnavailable)
}

// An upload that object storage does not take is answered UNAVAILABLE
// with retryAfter, a code that says "try again", not INTERNAL (found by the
// storage drill, internal/drills); nothing of it is kept.
func TestUploadWhileStorageIsUnavailable(t *testing.T) {
	t.Parallel()
	db, bucket, _ := newGallery(t)
	svc := work.New(db, refusing{bucket}, work.Config{
		MaxUploadBytes: 1 << 20, MaxPixels: 40_000_000, QuotaBytes: 50 << 20, URLTTL: time.Hour, Retention: 7 * 24 * time.Hour,
	})
	a := actor.Actor{UserID: newUser(t, db), Role: actor.RoleUser, Verified: true}
	png := imagingtest.PNG(64, 48)
	_, err := svc.Upload(context.Background(), a, work.UploadInput{File: bytes.NewReader(png), Size: int64(len(png)), Title: "t"})
	if got := apperr.CodeOf(err); got != apperr.Unavailable {
		t.Fatalf("Upload: got %s (%v), want %s", got, err, apperr.Unavailable)
	}
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Fields["retryAfter"] == nil {
		t.Errorf("Upload: got %v, want retryAfter among its fields", err)
	}
	var n int
	if err := db.NewRaw("SELECT count(*) FROM works WHERE user_id = ?", a.UserID).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("works kept: got %d, want 0", n)
	}
}

package work_test

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/imaging"
	"github.com/fastimage/api/internal/imaging/imagingtest"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/local"
	"github.com/fastimage/api/internal/work"
)

// A 415 KB PNG of 40 megapixels at 16 bits a channel passes the pixel cap
// but decodes to 320 MB. The upload is refused from its header, before
// anything allocates its pixels, and leaves nothing behind. Not parallel:
// it measures the whole process's allocations.
func TestDeepImageUploadIsRefusedWithoutDecoding(t *testing.T) {
	db, bucket, svc := newGallery(t)
	a := actor.Actor{UserID: newUser(t, db)}
	deep := imagingtest.DeepPNG(8000, 5000)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := svc.Upload(context.Background(), a, work.UploadInput{File: bytes.NewReader(deep), Size: int64(len(deep))})
	runtime.ReadMemStats(&after)
	if got := apperr.CodeOf(err); got != imaging.ImageTooLarge {
		t.Fatalf("upload of a %d KB 16-bit 40 MP PNG: got %v (%v), want IMAGE_TOO_LARGE", len(deep)>>10, got, err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 50<<20 {
		t.Errorf("refusing it allocated %d MB, want under 50 MB", got>>20)
	}
	left, err := bucket.List(context.Background(), storage.UserPrefix(a.UserID))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the refused upload left %d blobs", len(left))
	}
}

// Three large uploads at once are decoded for their thumbnails at most
// MaxConcurrentDecodes at a time.
func TestConcurrentDecodesAreBounded(t *testing.T) {
	t.Parallel()
	const uploads, limit = 3, 2
	db := dbtest.New(t)
	lb, err := local.New(local.Config{
		Dir: t.TempDir(), SigningKey: []byte("test-signing-key-0123456789abcdef"),
		BaseURL: "http://localhost/blobs", MaxPutBytes: 8 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	bucket := &decodeCounter{Bucket: lb, all: uploads, reached: make(chan struct{})}
	svc := work.New(db, bucket, work.Config{
		MaxUploadBytes: 8 << 20, MaxPixels: 40_000_000, QuotaBytes: 100 << 20, URLTTL: time.Hour, Retention: time.Hour,
		MaxConcurrentDecodes: limit,
	})
	a := actor.Actor{UserID: newUser(t, db)}
	photo := imagingtest.PNG(800, 600)

	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	for range uploads {
		wg.Go(func() {
			_, err := svc.Upload(context.Background(), a, work.UploadInput{File: bytes.NewReader(photo), Size: int64(len(photo))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a legitimate upload failed: %v", err)
		}
	}
	if got := bucket.peakOpen(); got > limit || got == 0 {
		t.Errorf("images decoded at once: got %d, want 1 to %d", got, limit)
	}
}

// decodeCounter counts the originals open for decoding at once: the service
// reads a stored original only to decode it. Each open waits (up to a
// deadline) for all of them to be open together, so that uploads that are
// not held back do overlap.
type decodeCounter struct {
	storage.Bucket
	all     int
	reached chan struct{}

	mu         sync.Mutex
	open, peak int
}

func (c *decodeCounter) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := c.Bucket.Open(ctx, key, offset, length)
	if err != nil || !strings.Contains(key, "/works/") {
		return rc, info, err
	}
	c.mu.Lock()
	c.open++
	c.peak = max(c.peak, c.open)
	if c.open == c.all {
		close(c.reached)
	}
	c.mu.Unlock()
	select {
	case <-c.reached:
	case <-time.After(time.Second):
	}
	return &countedReader{ReadCloser: rc, c: c}, info, nil
}

func (c *decodeCounter) peakOpen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

type countedReader struct {
	io.ReadCloser
	c    *decodeCounter
	once sync.Once
}

func (r *countedReader) Close() error {
	r.once.Do(func() {
		r.c.mu.Lock()
		r.c.open--
		r.c.mu.Unlock()
	})
	return r.ReadCloser.Close()
}

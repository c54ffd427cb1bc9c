package privacy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/storage"
)

// An export built by the workers on each storage backend: the ZIP is in
// the bucket under the user's prefix, its manifest matches its files, it
// holds the user's rows without credentials and every image byte for
// byte, names a vanished image instead of failing, and holds nothing of
// another user. Progress reaches the user's feed.
func TestExportOnBothBackends(t *testing.T) {
	t.Parallel()
	for name, newBucket := range map[string]func(testing.TB) storage.Bucket{"local": localBucket, "gcs": gcsBucket} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newExportEnv(t, newBucket(t), true, nil)
			ctx := context.Background()
			me := e.newUser(t, "ada@example.com")
			other := e.newUser(t, "grace@example.com")
			keys := e.addImages(t, me.UserID, 5, 300<<10)
			e.addImages(t, other.UserID, 1, 1000)
			if _, err := e.db.ExecContext(ctx, "INSERT INTO sessions (user_id, token_hash, ip, user_agent, expires_at) VALUES (?, ?, '203.0.113.7', 'test-agent', now() + interval '1 day')",
				me.UserID, bytes.Repeat([]byte{7}, 32)); err != nil {
				t.Fatal(err)
			}
			gone := keys[4]
			if err := e.bucket.Delete(ctx, gone); err != nil {
				t.Fatal(err)
			}

			r, err := e.svc.RequestExport(ctx, me)
			if err != nil {
				t.Fatal(err)
			}
			done := e.waitDone(t, r.ID)
			if done.Status != StatusCompleted || done.Progress != 100 {
				t.Fatalf("export ended %s at %d%% (error %v)", done.Status, done.Progress, deref(done.Error))
			}
			if want := ExportKey(me.UserID, r.ID); *done.ResultKey != want || !strings.HasPrefix(want, storage.UserPrefix(me.UserID)) {
				t.Errorf("result key %s, want %s", *done.ResultKey, want)
			}
			if d := time.Until(*done.ResultExpiresAt); d < MaxExportTTL-time.Minute || d > MaxExportTTL {
				t.Errorf("the export expires in %v, want 7 days", d)
			}

			zr := openExport(t, e.bucket, done)
			m := checkManifest(t, zr)
			if m.RequestID != r.ID || m.UserID != me.UserID {
				t.Errorf("manifest names request %s of %s", m.RequestID, m.UserID)
			}
			checkImages(t, zr, m, e.bucket, me.UserID, keys[:4])
			if len(m.MissingImages) != 1 || m.MissingImages[0].StorageKey != gone {
				t.Errorf("missing images: %+v, want %s", m.MissingImages, gone)
			}

			profile := exportedRows(t, zr, "profile.json")
			if u := profile["users"]; len(u) != 1 || u[0]["email"] != "ada@example.com" || u[0]["name"] != "Ada Export" {
				t.Errorf("profile.json users: %v", u)
			} else if _, ok := u[0]["password_hash"]; ok {
				t.Error("the export holds the password hash")
			}
			security := exportedRows(t, zr, "sessions_and_security.json")
			if s := security["sessions"]; len(s) != 1 || s[0]["ip"] != "203.0.113.7" {
				t.Errorf("sessions: %v", s)
			} else if _, ok := s[0]["token_hash"]; ok {
				t.Error("the export holds a session's token hash")
			}
			works := exportedRows(t, zr, "works.json")
			if len(works["works"]) != 5 || len(works["assets"]) != 5 || len(works["storage_usage"]) != 1 {
				t.Errorf("works.json: %d works, %d assets, %d usage rows; want 5, 5, 1", len(works["works"]), len(works["assets"]), len(works["storage_usage"]))
			}
			for _, e := range m.Files {
				if strings.HasSuffix(e.Name, ".json") && e.Rows == nil {
					t.Errorf("manifest entry %s has no row counts", e.Name)
				}
			}
			if m.Files[0].Name != "profile.json" || m.Files[0].Rows["users"] != 1 {
				t.Errorf("manifest row counts of profile.json: %v", m.Files[0].Rows)
			}

			// Nothing of the other user: their id appears in no file.
			for _, f := range zr.File {
				rc, _ := f.Open()
				body, _ := io.ReadAll(rc)
				rc.Close()
				if bytes.Contains(body, []byte(other.UserID.String())) || bytes.Contains(body, []byte("grace@example.com")) {
					t.Errorf("%s names the other user", f.Name)
				}
			}

			// Progress went to the user's feed, rising to 100.
			var entries []feed.Entry
			if err := e.db.NewSelect().Model(&entries).Where("user_id = ? AND kind = ?", me.UserID, feed.KindPrivacy).Order("seq").Scan(ctx); err != nil {
				t.Fatal(err)
			}
			last, steps := -1, 0
			for _, en := range entries {
				p, err := en.Decode()
				if err != nil {
					t.Fatal(err)
				}
				c := p.(feed.PrivacyRequestChanged)
				if c.Status != string(StatusInProgress) {
					continue
				}
				if c.Progress < last {
					t.Errorf("progress went back from %d to %d", last, c.Progress)
				}
				last = c.Progress
				steps++
			}
			final := entries[len(entries)-1]
			p, _ := final.Decode()
			if c := p.(feed.PrivacyRequestChanged); c.Status != string(StatusCompleted) || c.Progress != 100 || c.RequestID != r.ID {
				t.Errorf("last feed entry %+v, want the request completed at 100", c)
			}
			if steps < 10 {
				t.Errorf("%d progress entries in the feed, want the export's progress step by step", steps)
			}
		})
	}
}

// The download link is for the owner of a completed export only.
func TestExportLinkIsTheOwners(t *testing.T) {
	t.Parallel()
	e := newExportEnv(t, localBucket(t), true, nil)
	me := e.newUser(t, "owner@example.com")
	r, err := e.svc.RequestExport(context.Background(), me)
	if err != nil {
		t.Fatal(err)
	}
	if e.svc.ExportLink(me, r) != nil {
		t.Error("a link for an export not yet built")
	}
	done := e.waitDone(t, r.ID)
	link := e.svc.ExportLink(me, done)
	if link == nil || link.Bytes != *done.ResultBytes || link.SHA256 != *done.ResultSHA256 ||
		!strings.HasPrefix(link.URL, "https://app.example.test/privacy/exports/"+r.ID.String()+"?token=") {
		t.Fatalf("owner's link: %+v", link)
	}
	admin := actor.Actor{UserID: uuid.New(), Role: actor.RoleAdmin, Verified: true}
	if e.svc.ExportLink(admin, done) != nil {
		t.Error("an admin got the user's download link")
	}
}

// Expired exports are purged: blob deleted, result cleared, audited; once.
func TestPurgeExpiredExports(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now())
	bucket := localBucket(t)
	e := newExportEnv(t, bucket, true, clk)
	ctx := context.Background()
	me := e.newUser(t, "purge@example.com")
	r, err := e.svc.RequestExport(ctx, me)
	if err != nil {
		t.Fatal(err)
	}
	done := e.waitDone(t, r.ID)
	if n, err := e.svc.PurgeExpiredExports(ctx); err != nil || n != 0 {
		t.Fatalf("purge before expiry: %d, %v", n, err)
	}
	clk.Advance(MaxExportTTL + time.Second)
	if n, err := e.svc.PurgeExpiredExports(ctx); err != nil || n != 1 {
		t.Fatalf("purge after expiry: %d, %v; want 1", n, err)
	}
	if _, err := bucket.Stat(ctx, *done.ResultKey); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the ZIP is still there: %v", err)
	}
	after := e.waitDone(t, r.ID)
	if after.ResultKey != nil || after.ResultBytes != nil || after.ResultSHA256 != nil || after.ResultExpiresAt != nil {
		t.Errorf("result fields left: %+v", after)
	}
	if n, err := e.svc.PurgeExpiredExports(ctx); err != nil || n != 0 {
		t.Errorf("purge again: %d, %v; want 0", n, err)
	}
	trail, err := e.svc.Audit(ctx, me, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := trail[len(trail)-1]; got.Action != "export deleted" || got.Actor != System {
		t.Errorf("last audit step %+v", got)
	}
}

// A failure while building stores nothing and hands the job back for
// another attempt, with the error on the request.
func TestFailedExportStoresNothing(t *testing.T) {
	t.Parallel()
	inner := localBucket(t)
	e := newExportEnv(t, &failingOpen{Bucket: inner}, false, nil)
	ctx := context.Background()
	me := e.newUser(t, "fail@example.com")
	e.bucket = inner
	e.addImages(t, me.UserID, 2, 1000)
	r, err := e.svc.RequestExport(ctx, me)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := e.svc.claim(ctx, "test")
	if err != nil || claimed == nil || claimed.ID != r.ID {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	e.svc.run(ctx, "test", claimed)
	var back Request
	if err := e.db.NewSelect().Model(&back).Where("id = ?", r.ID).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if back.Status != StatusVerified || back.Error == nil || !strings.Contains(*back.Error, "disk on fire") || back.ResultKey != nil {
		t.Errorf("after a failed attempt: status %s, error %v, result %v", back.Status, deref(back.Error), back.ResultKey)
	}
	if _, err := inner.Stat(ctx, ExportKey(me.UserID, r.ID)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a failed export left a ZIP: %v", err)
	}
}

type failingOpen struct{ storage.Bucket }

func (f *failingOpen) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	return nil, storage.ObjectInfo{}, errors.New("disk on fire")
}

func TestManifestIsValidJSONWithImages(t *testing.T) {
	t.Parallel()
	e := newExportEnv(t, localBucket(t), true, nil)
	me := e.newUser(t, "json@example.com")
	e.addImages(t, me.UserID, 3, 100)
	r, err := e.svc.RequestExport(context.Background(), me)
	if err != nil {
		t.Fatal(err)
	}
	zr := openExport(t, e.bucket, e.waitDone(t, r.ID))
	rc, err := zr.Open("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var raw map[string]any
	if err := json.NewDecoder(rc).Decode(&raw); err != nil {
		t.Fatalf("manifest.json is not JSON: %v", err)
	}
	files, _ := raw["files"].([]any)
	if len(files) != len(exportFiles)+3 {
		t.Errorf("manifest lists %d files, want %d JSON files and 3 images", len(files), len(exportFiles))
	}
}

package db_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/migrations"
)

// migrationsUpTo returns the embedded migrations named up to and including
// last: the schema as it was when last was the newest.
func migrationsUpTo(t *testing.T, last string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() > last+"~" || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		data, err := fs.ReadFile(migrations.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = &fstest.MapFile{Data: data}
	}
	return out
}

// Generation events written before URLs were signed at delivery carry the
// URL signed then (expired long since) and no storage key. After migrating,
// an OUTPUT event names the key of its image, so that a replay signs a
// working URL, and no event keeps a dead URL.
func TestMigrateGivesOldOutputEventsTheirKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewEmptyURL(t)
	bdb, err := db.Open(ctx, dbtest.Config(url), "migrate-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	before, err := db.NewMigratorFS(bdb, migrationsUpTo(t, "20261130000001_house"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := before.Up(ctx); err != nil {
		t.Fatal(err)
	}
	const (
		user  = "0191a0d2-0000-7000-8000-000000000001"
		wk    = "0191a0d2-0000-7000-8000-000000000002"
		img   = "0191a0d2-0000-7000-8000-000000000003"
		gen   = "0191a0d2-0000-7000-8000-000000000004"
		key   = "users/" + user + "/works/" + wk + "/output-0.png"
		dead  = "https://storage.example/expired-signature"
		setup = `
INSERT INTO users (id, email, password_hash) VALUES ('` + user + `', 'old@example.com', 'x');
INSERT INTO works (id, user_id, kind, status) VALUES ('` + wk + `', '` + user + `', 'generation', 'succeeded');
INSERT INTO assets (id, work_id, user_id, role, storage_key, content_type, bytes, width, height, sha256)
  VALUES ('` + img + `', '` + wk + `', '` + user + `', 'output', '` + key + `', 'image/png', 10, 64, 64, 'x');
INSERT INTO generations (id, user_id, work_id, kind, prompt, width, height, count, seed, provider, status, credits_per_image, max_attempts, request_hash)
  VALUES ('` + gen + `', '` + user + `', '` + wk + `', 'generate', 'p', 64, 64, 1, 1, 'local', 'succeeded', 4, 3, 'h');
INSERT INTO generation_events (generation_id, seq, kind, payload) VALUES
  ('` + gen + `', 1, 'PROGRESS', '{"step": 1, "fraction": 0.5, "totalSteps": 2, "previewUrl": "` + dead + `"}'),
  ('` + gen + `', 2, 'OUTPUT', '{"url": "` + dead + `", "index": 0, "width": 64, "height": 64, "imageId": "` + img + `", "contentType": "image/png"}')`
	)
	if _, err := bdb.ExecContext(ctx, setup); err != nil {
		t.Fatal(err)
	}

	all, err := db.NewMigrator(bdb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := all.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	var gotKey string
	var dead1, dead2 bool
	if err := bdb.NewRaw(`SELECT coalesce(payload->>'key', ''), payload->'url' IS NOT NULL FROM generation_events WHERE seq = 2`).
		Scan(ctx, &gotKey, &dead1); err != nil {
		t.Fatal(err)
	}
	if err := bdb.NewRaw(`SELECT payload->'previewUrl' IS NOT NULL FROM generation_events WHERE seq = 1`).Scan(ctx, &dead2); err != nil {
		t.Fatal(err)
	}
	if gotKey != key {
		t.Errorf("OUTPUT event key: got %q, want %q", gotKey, key)
	}
	if dead1 || dead2 {
		t.Errorf("dead URLs kept: OUTPUT url %v, PROGRESS previewUrl %v; want neither", dead1, dead2)
	}
	if _, err := all.Down(ctx); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := all.Up(ctx); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}

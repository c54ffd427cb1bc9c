package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// `fastimage retention` applies the settings once and prints what it
// removed; a second run removes nothing.
func TestRetentionCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewURL(t)
	bdb, err := db.Open(ctx, dbtest.Config(dbURL), "retention-test")
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if _, err := bdb.ExecContext(ctx, `
		WITH u AS (INSERT INTO users (email, password_hash) VALUES ('ada@example.com', 'x') RETURNING id)
		INSERT INTO security_events (user_id, kind, ip, created_at)
		SELECT id, 'SIGN_IN', '198.51.100.7', now() - interval '400 days' FROM u
		UNION ALL SELECT id, 'SIGN_IN', '198.51.100.7', now() - interval '40 days' FROM u`); err != nil {
		t.Fatal(err)
	}
	runOnce := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"retention", "--database-url", dbURL, "--storage-dir", t.TempDir()}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		return stdout.String()
	}
	out := runOnce()
	for _, want := range []string{"1 security events deleted (older than 8760h0m0s)", "1 security event IP addresses cut"} {
		if !strings.Contains(out, want) {
			t.Errorf("first run printed:\n%s\nwant a line with %q", out, want)
		}
	}
	out = runOnce()
	if !strings.Contains(out, "0 security events deleted") || !strings.Contains(out, "0 security event IP addresses cut") {
		t.Errorf("second run printed:\n%s\nwant nothing removed", out)
	}
}

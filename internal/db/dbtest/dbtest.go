// Package dbtest hands each test a fresh, migrated Postgres database cloned
// from a template, and drops it when the test ends. Safe with t.Parallel and
// with `go test ./...` running packages in parallel processes.
//
// The server is TEST_DATABASE_URL when set, else the local default
// postgres://postgres@127.0.0.1:5432/postgres. `make test` starts one when
// none is running. A test that asks for a database fails when there is none:
// it never passes without one.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/migrations"
)

const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// templateLockKey serialises template building between test processes.
const templateLockKey = 0x666173747465 // "fastte"

var (
	setupOnce sync.Once
	admin     *bun.DB
	template  string
	setupErr  error
)

// AdminURL returns the URL of the server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultAdminURL
}

// Config returns database settings for a test database at url.
func Config(url string) config.DB {
	return config.DB{
		URL:              url,
		MaxOpenConns:     10,
		MaxIdleConns:     5,
		ConnMaxLifetime:  time.Hour,
		StatementTimeout: 30 * time.Second,
	}
}

// New returns a connection pool to a fresh migrated database that is closed
// and dropped when the test ends.
func New(t testing.TB) *bun.DB {
	t.Helper()
	u := NewURL(t)
	bdb, err := db.Open(context.Background(), Config(u), "fastimage-test")
	if err != nil {
		t.Fatalf("dbtest: open test database: %v", err)
	}
	t.Cleanup(func() { _ = bdb.Close() })
	return bdb
}

// NewURL returns the URL of a fresh migrated database, dropped when the test
// ends. Tests that start server processes pass it on.
func NewURL(t testing.TB) string {
	t.Helper()
	setup(t)
	return create(t, cloneTemplate)
}

// cloneTemplate clones the template into a new database. A checkout with
// other migrations sharing this server may have dropped the template as
// stale meanwhile; then it is built again, once.
func cloneTemplate(ctx context.Context) (url string, drop func() error, err error) {
	url, drop, err = createDB(ctx, "TEMPLATE "+quote(template))
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) && pgErr.Field('C') == "3D000" { // invalid_catalog_name
		if err := ensureTemplate(ctx); err != nil {
			return "", nil, fmt.Errorf("rebuild template database: %w", err)
		}
		return createDB(ctx, "TEMPLATE "+quote(template))
	}
	return url, drop, err
}

// NewEmptyURL returns the URL of a fresh database with no migrations applied,
// for tests of migrating itself.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	setup(t)
	return create(t, func(ctx context.Context) (string, func() error, error) { return createDB(ctx, "") })
}

// create makes a database with mk that is dropped when the test ends, and
// returns its URL.
func create(t testing.TB, mk func(context.Context) (url string, drop func() error, err error)) string {
	t.Helper()
	url, drop, err := mk(context.Background())
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("dbtest: %v", err)
		}
	})
	return url
}

func createDB(ctx context.Context, suffix string) (url string, drop func() error, err error) {
	// The creation time in the name lets a later run drop what a killed run
	// (whose cleanups never ran) left behind.
	name := fmt.Sprintf("fastimage_test_%d_%s", time.Now().Unix(), randomHex(6))
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+quote(name)+" "+suffix); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop = func() error {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return withDatabase(AdminURL(), name), drop, nil
}

// Clone creates one migrated database from the template and returns its URL
// and a function that drops it: what NewURL does, for the clone benchmark.
func Clone(tb testing.TB) (url string, drop func() error) {
	tb.Helper()
	setup(tb)
	url, drop, err := cloneTemplate(context.Background())
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	return url, drop
}

func setup(t testing.TB) {
	t.Helper()
	setupOnce.Do(func() { setupErr = prepare(context.Background()) })
	if setupErr != nil {
		t.Fatalf("dbtest: %v", setupErr)
	}
}

// prepare connects to the server and makes sure the template for the current
// migrations exists. The template's name carries a hash of the migration
// files, so a changed migration gets a new template.
func prepare(ctx context.Context) error {
	var err error
	admin, err = db.Open(ctx, Config(AdminURL()), "fastimage-test-admin")
	if err != nil {
		return fmt.Errorf("no Postgres to test against (%w).\n"+
			"Run `make test`, which finds or starts one, or set TEST_DATABASE_URL to a server where this user may create databases", err)
	}
	sum, err := migrationsHash()
	if err != nil {
		return err
	}
	template = "fastimage_tmpl_" + sum
	return ensureTemplate(ctx)
}

// ensureTemplate builds the template for the current migrations unless it
// exists, and drops templates of other migrations, under a lock shared by
// every test process on the server.
func ensureTemplate(ctx context.Context) error {
	conn, err := admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", templateLockKey); err != nil {
		return fmt.Errorf("template lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", templateLockKey)

	var ready bool
	if err := conn.QueryRowContext(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ? AND datistemplate)", template).Scan(&ready); err != nil {
		return err
	}
	if !ready {
		if err := buildTemplate(ctx, conn); err != nil {
			return fmt.Errorf("build template database: %w", err)
		}
	}
	dropStaleTemplates(ctx, conn)
	dropAbandonedDatabases(ctx, conn)
	return nil
}

// dropAbandonedDatabases removes test databases older than any test run
// lasts (CI allows 90 minutes): those of runs that were killed. Older names
// without a time are left alone.
func dropAbandonedDatabases(ctx context.Context, conn bun.Conn) {
	var names []string
	if err := conn.NewRaw("SELECT datname FROM pg_database WHERE datname ~ '^fastimage_test_[0-9]+_'").Scan(ctx, &names); err != nil {
		return
	}
	cutoff := time.Now().Add(-3 * time.Hour).Unix()
	for _, name := range names {
		var created int64
		if _, err := fmt.Sscanf(name, "fastimage_test_%d_", &created); err == nil && created < cutoff {
			_, _ = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)")
		}
	}
}

func buildTemplate(ctx context.Context, conn bun.Conn) error {
	// A half-built template from a run that crashed is never marked as a
	// template; start it over.
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quote(template)+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+quote(template)); err != nil {
		return err
	}
	tdb, err := db.Open(ctx, Config(withDatabase(AdminURL(), template)), "fastimage-test-template")
	if err != nil {
		return err
	}
	m, err := db.NewMigrator(tdb)
	if err == nil {
		_, err = m.Up(ctx)
	}
	if cerr := tdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "ALTER DATABASE "+quote(template)+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
	return err
}

// dropStaleTemplates removes templates made for older migrations. One that is
// being cloned right now refuses to go; it is left for a later run.
func dropStaleTemplates(ctx context.Context, conn bun.Conn) {
	var stale []string
	if err := conn.NewRaw("SELECT datname FROM pg_database WHERE datname LIKE 'fastimage\\_tmpl\\_%' AND datname <> ?", template).
		Scan(ctx, &stale); err != nil {
		return
	}
	for _, name := range stale {
		_, _ = conn.ExecContext(ctx, "ALTER DATABASE "+quote(name)+" WITH IS_TEMPLATE false")
		_, _ = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quote(name))
	}
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func withDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("dbtest: bad database URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func quote(ident string) string { return `"` + ident + `"` }

package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/fastimage/api/migrations"
)

// migrationLockKey is the Postgres advisory lock that serialises migrations
// between replicas starting at once. bun/migrate's own lock table can stay
// locked after a crash; an advisory lock dies with its session.
const migrationLockKey = 0x66617374696d67 // "fastimg"

// Migrator applies the embedded migrations.
type Migrator struct {
	db  *bun.DB
	all *migrate.Migrations
	m   *migrate.Migrator
}

// NewMigrator returns a Migrator for db using the embedded migrations.
func NewMigrator(db *bun.DB) (*Migrator, error) {
	return NewMigratorFS(db, migrations.FS)
}

// NewMigratorFS returns a Migrator for the migrations in fsys.
func NewMigratorFS(db *bun.DB, fsys fs.FS) (*Migrator, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(fsys); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	return &Migrator{
		db:  db,
		all: ms,
		// Recorded as applied only once it has succeeded, so that a migration
		// that fails is tried again on the next start.
		m: migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true)),
	}, nil
}

// withLock runs fn while holding the migration advisory lock on a dedicated
// connection, after making sure bun's bookkeeping tables exist.
func (m *Migrator) withLock(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockKey); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must go.
		if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", migrationLockKey); uerr != nil {
			err = errors.Join(err, fmt.Errorf("migration unlock: %w", uerr))
		}
	}()
	if err := m.m.Init(ctx); err != nil {
		return fmt.Errorf("create migration tables: %w", err)
	}
	return fn(ctx)
}

// Up applies every pending migration and returns the names applied.
func (m *Migrator) Up(ctx context.Context) ([]string, error) {
	var applied []string
	err := m.withLock(ctx, func(ctx context.Context) error {
		group, err := m.m.Migrate(ctx)
		for _, mig := range group.Migrations {
			applied = append(applied, mig.Name+"_"+mig.Comment)
		}
		return err
	})
	return applied, err
}

// Down rolls back the last group of migrations and returns the names rolled
// back. Callers refuse it in production.
func (m *Migrator) Down(ctx context.Context) ([]string, error) {
	var undone []string
	err := m.withLock(ctx, func(ctx context.Context) error {
		group, err := m.m.Rollback(ctx)
		for _, mig := range group.Migrations {
			undone = append(undone, mig.Name+"_"+mig.Comment)
		}
		return err
	})
	return undone, err
}

// MigrationStatus is one migration and whether it has been applied.
type MigrationStatus struct {
	Name    string
	Applied bool
}

// Status lists every migration in order with whether it has been applied. It
// reads without taking the lock and without creating anything.
func (m *Migrator) Status(ctx context.Context) ([]MigrationStatus, error) {
	var exists bool
	if err := m.db.NewRaw("SELECT to_regclass('bun_migrations') IS NOT NULL").Scan(ctx, &exists); err != nil {
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	ms := m.all.Sorted()
	if exists {
		var err error
		if ms, err = m.m.MigrationsWithStatus(ctx); err != nil {
			return nil, fmt.Errorf("read migration status: %w", err)
		}
	}
	out := make([]MigrationStatus, len(ms))
	for i, mig := range ms {
		out[i] = MigrationStatus{Name: mig.Name + "_" + mig.Comment, Applied: mig.IsApplied()}
	}
	return out, nil
}

// Pending returns the names of the migrations not yet applied.
func (m *Migrator) Pending(ctx context.Context) ([]string, error) {
	all, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, s := range all {
		if !s.Applied {
			pending = append(pending, s.Name)
		}
	}
	return pending, nil
}

// Package db opens the Postgres database through Bun and pgdriver with the
// limits production needs, and runs the embedded migrations.
package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/fastimage/api/internal/config"
)

// Open connects to the database described by cfg and checks that it answers.
// Every connection carries a statement timeout, so that no query can run
// unbounded; pgdriver has no query cancellation of its own.
func Open(ctx context.Context, cfg config.DB, appName string) (*bun.DB, error) {
	connector := pgdriver.NewConnector(
		pgdriver.WithDSN(cfg.URL),
		pgdriver.WithApplicationName(appName),
		pgdriver.WithConnParams(map[string]any{
			"statement_timeout":                   cfg.StatementTimeout.Milliseconds(),
			"idle_in_transaction_session_timeout": (2 * cfg.StatementTimeout).Milliseconds(),
			"TimeZone":                            "UTC",
		}),
		// The driver's read timeout must outlast the statement timeout, so that
		// Postgres reports a slow query instead of the socket dying under it.
		pgdriver.WithReadTimeout(cfg.StatementTimeout+5*time.Second),
		pgdriver.WithWriteTimeout(10*time.Second),
		pgdriver.WithDialTimeout(5*time.Second),
	)
	sqldb := sql.OpenDB(connector)
	sqldb.SetMaxOpenConns(cfg.MaxOpenConns)
	sqldb.SetMaxIdleConns(cfg.MaxIdleConns)
	sqldb.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)

	bdb := bun.NewDB(sqldb, pgdialect.New())
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bdb.PingContext(pingCtx); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("connect to database %s: %w", Redact(cfg.URL), err)
	}
	return bdb, nil
}

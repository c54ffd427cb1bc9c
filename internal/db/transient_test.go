package db_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/fastimage/api/internal/db"
	"github.com/fastimage/api/internal/db/dbtest"
)

// TestTransient: the errors a real server gives for a moment's trouble are
// transient; those that would come back the same are not.
func TestTransient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	onConn := func(t *testing.T, stmts ...string) error {
		t.Helper()
		conn, err := bdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		t.Fatalf("%v: no error", stmts)
		return nil
	}
	for _, tc := range []struct {
		name  string
		stmts []string
		want  bool
	}{
		{"statement timeout", []string{"SET statement_timeout = 10", "SELECT pg_sleep(1)"}, true},
		{"connection terminated", []string{"SELECT pg_terminate_backend(pg_backend_pid())"}, true},
		{"syntax error", []string{"SELEC 1"}, false},
		{"unique violation", []string{"CREATE TEMP TABLE t (k int PRIMARY KEY)", "INSERT INTO t VALUES (1), (1)"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := onConn(t, tc.stmts...)
			if got := db.Transient(err); got != tc.want {
				t.Errorf("Transient(%v): got %v, want %v", err, got, tc.want)
			}
		})
	}
	for _, err := range []error{nil, sql.ErrNoRows, context.Canceled} {
		if db.Transient(err) {
			t.Errorf("Transient(%v): got true, want false", err)
		}
	}
}

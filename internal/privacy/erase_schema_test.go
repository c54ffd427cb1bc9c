package privacy_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/privacy"
)

// The ledger stays append-only: the erasure's transaction may move a
// user's entries to a tombstone, changing nothing else, and nothing else
// may change an entry.
func TestLedgerStaysAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	newUser := func(email, status string) uuid.UUID {
		t.Helper()
		var id uuid.UUID
		if err := bdb.NewRaw("INSERT INTO users (email, password_hash, status) VALUES (?, 'x', ?) RETURNING id", email, status).Scan(ctx, &id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	user, tomb, live := newUser("ada@example.com", "active"), newUser("tomb@deleted.invalid", "deleted"), newUser("bob@example.com", "active")
	if err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := credit.GrantSignupBonus(ctx, tx, user, 25); err != nil {
			return err
		}
		_, err := tx.NewRaw("INSERT INTO credit_accounts (user_id) VALUES (?), (?)", tomb, live).Exec(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// change runs query in a transaction, as the erasure does when erasure
	// is true, and reports its error.
	change := func(erasure bool, query string, args ...any) error {
		return bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if erasure {
				if _, err := tx.ExecContext(ctx, "SET LOCAL fastimage.erasure = 'on'"); err != nil {
					return err
				}
			}
			_, err := tx.NewRaw(query, args...).Exec(ctx)
			return err
		})
	}
	const move = "UPDATE credit_entries SET user_id = ?0, idempotency_key = replace(idempotency_key, ?1::text, ?0::text)"
	for _, tt := range []struct {
		name    string
		erasure bool
		query   string
		args    []any
	}{
		{"a plain update", false, "UPDATE credit_entries SET reason = 'oops' WHERE user_id = ?", []any{user}},
		{"moving outside an erasure", false, move + " WHERE user_id = ?1", []any{tomb, user}},
		{"changing the amount in an erasure", true, move + ", amount = amount + 1 WHERE user_id = ?1", []any{tomb, user}},
		{"changing the reason in an erasure", true, move + ", reason = 'moved' WHERE user_id = ?1", []any{tomb, user}},
		{"moving to a user who is not a tombstone", true, move + " WHERE user_id = ?1", []any{live, user}},
		{"keeping the old id in the key", true, "UPDATE credit_entries SET user_id = ? WHERE user_id = ?", []any{tomb, user}},
		{"changing the key otherwise", true, "UPDATE credit_entries SET user_id = ?, idempotency_key = 'other' WHERE user_id = ?", []any{tomb, user}},
		{"deleting in an erasure", true, "DELETE FROM credit_entries WHERE user_id = ?", []any{user}},
		{"deleting", false, "DELETE FROM credit_entries WHERE user_id = ?", []any{user}},
		{"truncating", true, "TRUNCATE credit_entries CASCADE", nil},
	} {
		err := change(tt.erasure, tt.query, tt.args...)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want it refused as append-only", tt.name, err)
		}
	}

	if err := change(true, move+" WHERE user_id = ?1", tomb, user); err != nil {
		t.Fatalf("the erasure's move: %v", err)
	}
	var key string
	if err := bdb.NewRaw("SELECT idempotency_key FROM credit_entries WHERE user_id = ?", tomb).Scan(ctx, &key); err != nil {
		t.Fatal(err)
	}
	if key != "signup-bonus:"+tomb.String() {
		t.Errorf("moved entry's key: %q", key)
	}
	// The setting lasted the transaction only.
	if err := change(false, "UPDATE credit_entries SET user_id = ? WHERE user_id = ?", user, tomb); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("an update after the erasure's transaction: got %v, want it refused", err)
	}
}

// Every table that refers to a user either loses its rows with the user
// (ON DELETE CASCADE or SET NULL) or is one the erasure keeps under the
// tombstone; a table added with a user_id and neither fails here, before
// an erasure fails on it in production.
func TestEveryReferenceToAUserIsErasedOrKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.New(t)
	var fks []struct {
		Table  string `bun:"tbl"`
		Ref    string `bun:"ref"`
		Delete string `bun:"del"`
	}
	if err := bdb.NewRaw(`SELECT conrelid::regclass::text AS tbl, confrelid::regclass::text AS ref, confdeltype::text AS del
		FROM pg_constraint WHERE contype = 'f' AND confrelid IN ('users'::regclass, 'credit_accounts'::regclass)
		ORDER BY 1`).Scan(ctx, &fks); err != nil {
		t.Fatal(err)
	}
	if len(fks) < 20 {
		t.Fatalf("the catalogue lists %d foreign keys to users and credit accounts, want the schema's 20 and more", len(fks))
	}
	referring := map[string]bool{}
	for _, fk := range fks {
		referring[fk.Table] = true
		kept := slices.Contains(privacy.RetainedTables, fk.Table)
		erased := fk.Ref == "users" && (fk.Delete == "c" || fk.Delete == "n")
		if !kept && !erased {
			t.Errorf("%s refers to %s (on delete %q) but is neither deleted with the user nor kept under the tombstone (privacy.RetainedTables): erasing a user would fail",
				fk.Table, fk.Ref, fk.Delete)
		}
	}
	for _, table := range privacy.RetainedTables {
		if !referring[table] {
			t.Errorf("privacy.RetainedTables names %s, which refers to no user", table)
		}
	}
	var userColumns []string
	if err := bdb.NewRaw("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'user_id' ORDER BY 1").
		Scan(ctx, &userColumns); err != nil {
		t.Fatal(err)
	}
	for _, table := range userColumns {
		if !referring[table] {
			t.Errorf("%s has a user_id without a foreign key to users: its rows would outlive the user's erasure", table)
		}
	}
}

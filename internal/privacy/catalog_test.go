package privacy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/db/dbtest"
)

// Every table the catalogue says refers to a user is exported or exempt
// with a reason: a table added by a migration that is neither fails here,
// naming the two lists to add it to.
func TestEveryUserTableIsExportedOrExempt(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	tables, err := UserTables(context.Background(), bdb)
	if err != nil {
		t.Fatal(err)
	}
	exported := ExportedTables()
	var names []string
	for _, ut := range tables {
		names = append(names, ut.Name)
		_, exempt := exemptTables[ut.Name]
		in := slices.Contains(exported, ut.Name)
		switch {
		case !in && !exempt:
			t.Errorf("table %s refers to a user (%s) but is neither exported (add it to exportFiles in internal/privacy/export_tables.go) "+
				"nor exempt (add it to exemptTables there, with the reason)", ut.Name, ut.Why)
		case in && exempt:
			t.Errorf("table %s is both exported and exempt; it is one or the other", ut.Name)
		}
	}
	// The walk must see what it is meant to see, or it would pass by
	// seeing nothing.
	for _, want := range []string{"users", "sessions", "works", "assets", "generation_events", "credit_entries", "privacy_audit", "mail_outbox", "support_messages"} {
		if !slices.Contains(names, want) {
			t.Errorf("the catalogue walk missed %s; it found %v", want, names)
		}
	}
	for _, notUser := range []string{"rate_events", "stripe_events", "generation_prices", "legal_documents", "bun_migrations"} {
		if slices.Contains(names, notUser) {
			t.Errorf("the catalogue walk counts %s as user data", notUser)
		}
	}

	// Both lists name tables that exist, and each exemption says why.
	var all []string
	if err := bdb.NewRaw("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").Scan(context.Background(), &all); err != nil {
		t.Fatal(err)
	}
	for _, name := range exported {
		if !slices.Contains(all, name) {
			t.Errorf("exportFiles reads table %s, which does not exist", name)
		}
	}
	for name, reason := range exemptTables {
		if !slices.Contains(all, name) {
			t.Errorf("exemptTables lists %s, which does not exist", name)
		}
		if len(strings.TrimSpace(reason)) < 20 {
			t.Errorf("exemptTables[%s]: the reason %q does not say why", name, reason)
		}
	}
	seen := map[string]bool{}
	for _, name := range exported {
		if seen[name] {
			t.Errorf("table %s is exported twice", name)
		}
		seen[name] = true
	}
}

// A table that a new migration adds with a user_id column, or one that
// hangs off an exported table, is caught.
func TestCatalogueWalkCatchesNewTables(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE favourites (user_id uuid NOT NULL, note text)",
		"CREATE TABLE work_comments (id uuid PRIMARY KEY, work_id uuid NOT NULL REFERENCES works (id), body text)",
		"CREATE TABLE newsletter (address text, email text)",
		"CREATE TABLE weather (city text)",
	} {
		if _, err := bdb.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	tables, err := UserTables(ctx, bdb)
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]string{}
	for _, ut := range tables {
		why[ut.Name] = ut.Why
	}
	for name, want := range map[string]string{
		"favourites":    "column user_id",
		"work_comments": "foreign key work_comments_work_id_fkey to works (column user_id)",
		"newsletter":    "column email holds an email address",
	} {
		if why[name] != want {
			t.Errorf("%s: got %q, want %q", name, why[name], want)
		}
	}
	if _, ok := why["weather"]; ok {
		t.Errorf("weather counts as user data: %s", why["weather"])
	}
}

// Package privacytest checks what an erasure leaves in the database, by
// walking its catalogue rather than a list of tables someone has to keep up
// to date: a table added later is checked too.
package privacytest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/uptrace/bun"
)

// Trace is one value in the database that holds a needle.
type Trace struct {
	Table, Column, Value string
}

func (t Trace) String() string {
	v := t.Value
	if len(v) > 200 {
		v = v[:200] + "…"
	}
	return fmt.Sprintf("%s.%s = %q", t.Table, t.Column, v)
}

// Traces returns every value of every text-like column (text, varchar,
// uuid, json, jsonb, arrays) of every table of the public schema whose
// text contains one of needles, compared without case; at most 20 per
// column.
func Traces(ctx context.Context, db bun.IDB, needles ...string) ([]Trace, error) {
	var cols []struct {
		Table  string `bun:"table_name"`
		Column string `bun:"column_name"`
	}
	if err := db.NewRaw(`SELECT c.table_name, c.column_name
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
		  AND c.data_type IN ('text', 'character varying', 'character', 'uuid', 'json', 'jsonb', 'ARRAY')
		ORDER BY c.table_name, c.ordinal_position`).Scan(ctx, &cols); err != nil {
		return nil, fmt.Errorf("read the catalogue: %w", err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("the catalogue lists no text columns")
	}
	lowered := make([]string, len(needles))
	for i, n := range needles {
		if n == "" {
			return nil, fmt.Errorf("needle %d is empty: it would match everything", i)
		}
		lowered[i] = strings.ToLower(n)
	}
	var out []Trace
	for _, c := range cols {
		var conds []string
		var args []any
		for _, n := range lowered {
			conds = append(conds, "strpos(lower(?::text), ?) > 0")
			args = append(args, bun.Ident(c.Column), n)
		}
		var values []string
		q := fmt.Sprintf("SELECT ?::text FROM ? WHERE %s LIMIT 20", strings.Join(conds, " OR "))
		if err := db.NewRaw(q, append([]any{bun.Ident(c.Column), bun.Ident(c.Table)}, args...)...).Scan(ctx, &values); err != nil {
			return nil, fmt.Errorf("search %s.%s: %w", c.Table, c.Column, err)
		}
		for _, v := range values {
			out = append(out, Trace{Table: c.Table, Column: c.Column, Value: v})
		}
	}
	return out, nil
}

// AssertNoTraces fails t for every value in the database that holds one
// of needles, except those allowed says may stay (nil: none).
func AssertNoTraces(t testing.TB, db bun.IDB, allowed func(Trace) bool, needles ...string) {
	t.Helper()
	traces, err := Traces(context.Background(), db, needles...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range traces {
		if allowed == nil || !allowed(tr) {
			t.Errorf("left behind: %s", tr)
		}
	}
}

// Ledger is a user's credit account as its tables tell it.
type Ledger struct {
	Balance, Held, Owed    int64
	Entries                int
	EntrySum, Lots, LotSum int64
	OpenHolds, OpenHoldSum int64
}

// LedgerOf reads userID's ledger. A user without a credit account has a
// zero Ledger.
func LedgerOf(t testing.TB, db bun.IDB, userID any) Ledger {
	t.Helper()
	var l Ledger
	if err := db.NewRaw(`SELECT
			coalesce((SELECT balance FROM credit_accounts WHERE user_id = ?0), 0),
			coalesce((SELECT held FROM credit_accounts WHERE user_id = ?0), 0),
			coalesce((SELECT owed FROM credit_accounts WHERE user_id = ?0), 0),
			(SELECT count(*) FROM credit_entries WHERE user_id = ?0),
			(SELECT coalesce(sum(amount), 0) FROM credit_entries WHERE user_id = ?0),
			(SELECT count(*) FROM credit_lots WHERE user_id = ?0),
			(SELECT coalesce(sum(remaining), 0) FROM credit_lots WHERE user_id = ?0),
			(SELECT count(*) FROM credit_holds WHERE user_id = ?0 AND status = 'held'),
			(SELECT coalesce(sum(amount), 0) FROM credit_holds WHERE user_id = ?0 AND status = 'held')`, userID).
		Scan(context.Background(), &l.Balance, &l.Held, &l.Owed, &l.Entries, &l.EntrySum, &l.Lots, &l.LotSum, &l.OpenHolds, &l.OpenHoldSum); err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	return l
}

// AddsUp fails t unless the ledger's parts agree: the balance is the sum of
// the entries and of what the lots hold, the held amount that of the open
// holds.
func (l Ledger) AddsUp(t testing.TB) {
	t.Helper()
	if l.Balance != l.EntrySum {
		t.Errorf("ledger: balance %d, sum of entries %d", l.Balance, l.EntrySum)
	}
	if l.Balance != l.LotSum {
		t.Errorf("ledger: balance %d, lots hold %d", l.Balance, l.LotSum)
	}
	if l.Held != l.OpenHoldSum {
		t.Errorf("ledger: held %d, open holds %d", l.Held, l.OpenHoldSum)
	}
}

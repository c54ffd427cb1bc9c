package privacy

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/uptrace/bun"
)

// UserTable is a table that holds data about users, and why the catalogue
// says so.
type UserTable struct {
	Name string
	Why  string
}

// emailColumns are column names that hold an email address.
var emailColumns = []string{"email", "new_email", "to_address"}

// UserTables walks the database catalogue for every table of the public
// schema that refers to a user: users itself, a table with a user_id
// column or a column holding an email address, a foreign key to users, or
// a foreign key to such a table (transitively: a generation's events, a
// request's audit trail). In name order.
func UserTables(ctx context.Context, idb bun.IDB) ([]UserTable, error) {
	var cols []struct {
		Table  string `bun:"table_name"`
		Column string `bun:"column_name"`
	}
	if err := idb.NewRaw(`SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'`).Scan(ctx, &cols); err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	var fks []struct {
		Child  string `bun:"child"`
		Parent string `bun:"parent"`
		Name   string `bun:"conname"`
	}
	if err := idb.NewRaw(`SELECT c.relname AS child, p.relname AS parent, k.conname FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE k.contype = 'f' AND n.nspname = 'public'`).Scan(ctx, &fks); err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	why := map[string]string{"users": "the users table"}
	for _, c := range cols {
		if _, ok := why[c.Table]; ok {
			continue
		}
		switch {
		case c.Column == "user_id":
			why[c.Table] = "column user_id"
		case slices.Contains(emailColumns, c.Column):
			why[c.Table] = "column " + c.Column + " holds an email address"
		}
	}
	for changed := true; changed; {
		changed = false
		for _, fk := range fks {
			if _, ok := why[fk.Child]; ok {
				continue
			}
			if _, ok := why[fk.Parent]; ok {
				why[fk.Child] = fmt.Sprintf("foreign key %s to %s (%s)", fk.Name, fk.Parent, why[fk.Parent])
				changed = true
			}
		}
	}
	out := make([]UserTable, 0, len(why))
	for _, name := range slices.Sorted(maps.Keys(why)) {
		out = append(out, UserTable{Name: name, Why: why[name]})
	}
	return out, nil
}

// ExportedTables lists the tables an export reads, in the order it
// writes them.
func ExportedTables() []string {
	var out []string
	for _, f := range exportFiles {
		for _, t := range f.Tables {
			out = append(out, t.Name)
		}
	}
	return out
}

// ExemptTables are the tables that refer to a user but are not exported,
// with the reason for each.
func ExemptTables() map[string]string { return maps.Clone(exemptTables) }

// ExportFileOf names the file of the ZIP that holds table's rows ("" for
// none).
func ExportFileOf(table string) string {
	for _, f := range exportFiles {
		for _, t := range f.Tables {
			if t.Name == table {
				return f.Name
			}
		}
	}
	return ""
}

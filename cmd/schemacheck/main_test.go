package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The whole flow on a small module: a snapshot, a removed field refused by
// check and update alike, accepted once the changelog names it, and an
// additive change that needs only the snapshot updated.
func TestRemovedFieldNeedsTheChangelog(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "schema.graphqls"), "type Query {\n  \"The work.\"\n  work: Work\n}\n")
	workSchema := filepath.Join(root, "graph", "schema", "work.graphqls")
	writeFile(t, workSchema, "type Work {\n  id: ID!\n  title: String!\n}\n")

	if err := run(root, false, io.Discard); err == nil || !strings.Contains(err.Error(), "make schema-update") {
		t.Fatalf("check without a snapshot: %v", err)
	}
	if err := run(root, true, io.Discard); err != nil {
		t.Fatal(err)
	}
	snapshot, _ := os.ReadFile(filepath.Join(root, snapshotPath))
	if !strings.Contains(string(snapshot), "The work.") || !strings.Contains(string(snapshot), "title: String!") {
		t.Fatalf("snapshot:\n%s", snapshot)
	}
	if err := run(root, false, io.Discard); err != nil {
		t.Fatalf("check right after update: %v", err)
	}

	writeFile(t, workSchema, "type Work {\n  id: ID!\n}\n")
	for _, update := range []bool{false, true} {
		err := run(root, update, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "`Work.title` field removed") || !strings.Contains(err.Error(), changelogPath) {
			t.Fatalf("update=%v after removing Work.title: %v, want the breaking change named", update, err)
		}
	}
	writeFile(t, filepath.Join(root, changelogPath), "# Schema changelog\n\n- `Work.title` removed: nobody read it.\n")
	if err := run(root, false, io.Discard); err == nil || !strings.Contains(err.Error(), "out of date") {
		t.Fatalf("check with the change listed but the snapshot stale: %v", err)
	}
	if err := run(root, true, io.Discard); err != nil {
		t.Fatalf("update with the change listed: %v", err)
	}
	if err := run(root, false, io.Discard); err != nil {
		t.Fatalf("check after the listed update: %v", err)
	}

	writeFile(t, workSchema, "type Work {\n  id: ID!\n  name: String\n}\n")
	if err := run(root, false, io.Discard); err == nil || strings.Contains(err.Error(), "breaking") || !strings.Contains(err.Error(), "`Work.name` field added") {
		t.Fatalf("check after adding a field: %v, want only the stale snapshot", err)
	}
	if err := run(root, true, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(root, false, io.Discard); err != nil {
		t.Fatal(err)
	}

	writeFile(t, workSchema, "type Work {\n  id: ID!\n  name: String @deprecated\n}\n")
	if err := run(root, true, io.Discard); err == nil || !strings.Contains(err.Error(), "Work.name") {
		t.Fatalf("@deprecated without a reason: %v", err)
	}
}

// The committed snapshot is the schema as it stands (what `make
// schema-check` checks in CI, here for `go test` too).
func TestCommittedSnapshotIsCurrent(t *testing.T) {
	if err := run(filepath.Join("..", ".."), false, io.Discard); err != nil {
		t.Fatal(err)
	}
}

package storage_test

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/storage"
)

// FuzzValidKey reads any string as an object key, as a signed blob URL
// carries one. What it accepts is a clean relative path that stays inside
// the folder it is joined to, on any backend.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"users/0190f5c2-0000-7000-8000-000000000001/works/a.png", "../etc/passwd", "a/./b", "a//b", "/abs", "a\\..\\b", "a/\x00", "a/%2e%2e/b", "…/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !storage.ValidKey(key) {
			return
		}
		if path.Clean(key) != key || path.IsAbs(key) || strings.HasPrefix(key, "../") || key == ".." || len(key) > 1024 {
			t.Fatalf("ValidKey(%q), but it cleans to %q", key, path.Clean(key))
		}
		root := filepath.FromSlash("/srv/blobs")
		if p := filepath.Join(root, filepath.FromSlash(key)); !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("ValidKey(%q), but it joins to %q, outside %q", key, p, root)
		}
	})
}

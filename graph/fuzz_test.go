package graph

import (
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/relay"
)

// FuzzCursor reads any string as a connection's after cursor (and so as
// any id argument, which uuidOf also reads). It never panics; it refuses
// with VALIDATION or NOT_FOUND, or returns the key whose cursor is exactly
// the one given, so that a page can only be asked for in the spelling the
// API handed out.
func FuzzCursor(f *testing.F) {
	key := "0190f5c2-0000-7000-8000-000000000001"
	for _, c := range []string{
		relay.ID("Work", key),
		relay.ID("Work", "0190F5C2-0000-7000-8000-000000000001"),
		relay.ID("Work", "{"+key+"}"),
		relay.ID("Work", "urn:uuid:"+key),
		relay.ID("Work", "0190f5c2000070008000000000000001"),
		relay.ID("Generation", key),
		relay.ID("Work", "not-a-uuid"),
		"", "V29yazp4", "%%%",
	} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, after string) {
		got, err := cursorOf(&after, "Work")
		if err != nil {
			if c := apperr.CodeOf(err); c != apperr.Validation && c != apperr.NotFound {
				t.Fatalf("cursorOf(%q): got %v, want VALIDATION or NOT_FOUND", after, err)
			}
			return
		}
		if got == nil {
			t.Fatalf("cursorOf(%q) = %v", after, got)
		}
		if again := relay.ID("Work", got.String()); again != after {
			t.Fatalf("cursorOf(%q) = %v, whose cursor is %q", after, got, again)
		}
	})
}

// Before keyUUID, each of these named the Work of the first: a cursor or id
// in upper case, braces, urn:uuid: or without hyphens (FuzzCursor holds
// them as seeds).
func TestCursorRefusesOtherSpellings(t *testing.T) {
	key := "0190f5c2-0000-7000-8000-000000000001"
	for _, k := range []string{"0190F5C2-0000-7000-8000-000000000001", "{" + key + "}", "urn:uuid:" + key, "0190f5c2000070008000000000000001"} {
		c := relay.ID("Work", k)
		if _, err := cursorOf(&c, "Work"); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("cursorOf(ID(Work, %q)): got %v, want NOT_FOUND", k, err)
		}
	}
	c := relay.ID("Work", key)
	if u, err := cursorOf(&c, "Work"); err != nil || u.String() != key {
		t.Errorf("cursorOf(ID(Work, %q)) = %v, %v", key, u, err)
	}
}

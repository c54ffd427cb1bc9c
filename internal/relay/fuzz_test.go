package relay_test

import (
	"strings"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/relay"
)

// FuzzParseID reads any string as a global id. It never panics; it refuses
// with VALIDATION, or it names a type and a key that ID turns back into
// exactly the id given: one object, one id, so that no two spellings of an
// id can pass for different objects.
func FuzzParseID(f *testing.F) {
	for _, id := range []string{
		relay.ID("Work", "0190f5c2-0000-7000-8000-000000000001"),
		relay.ID("User", "a:b"),
		"V29yazp4", "V29yazp5", "V29yazp4\n", "V29y\razp4", "V29yazp4==", "", ":", "not base64!",
	} {
		f.Add(id, "Work")
	}
	f.Fuzz(func(t *testing.T, id, typ string) {
		gotTyp, key, err := relay.ParseID(id)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("ParseID(%q): got %v, want VALIDATION", id, err)
			}
		} else {
			if gotTyp == "" || key == "" || strings.Contains(gotTyp, ":") {
				t.Fatalf("ParseID(%q) = %q, %q", id, gotTyp, key)
			}
			if again := relay.ID(gotTyp, key); again != id {
				t.Fatalf("ParseID(%q) = %q, %q, which is the id %q", id, gotTyp, key, again)
			}
		}
		k, err := relay.KeyOf(id, typ)
		switch {
		case err == nil && (gotTyp != typ || k != key):
			t.Fatalf("KeyOf(%q, %q) = %q, ParseID says %q, %q", id, typ, k, gotTyp, key)
		case err != nil && apperr.CodeOf(err) != apperr.Validation && apperr.CodeOf(err) != apperr.NotFound:
			t.Fatalf("KeyOf(%q, %q): got %v, want VALIDATION or NOT_FOUND", id, typ, err)
		}
		// Round trip the other way: every type without a colon and every
		// non-empty key come back from their id.
		if typ != "" && !strings.Contains(typ, ":") && id != "" {
			if gt, gk, err := relay.ParseID(relay.ID(typ, id)); err != nil || gt != typ || gk != id {
				t.Fatalf("ParseID(ID(%q, %q)) = %q, %q, %v", typ, id, gt, gk, err)
			}
		}
	})
}

package account_test

import (
	"strings"
	"testing"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
)

// FuzzNormalizeEmail reads any string as the email address of a sign-up,
// sign-in or email change. It never panics; it refuses with VALIDATION; and
// what it returns is one lower-case address of at most 254 bytes, without
// spaces or a display name, which reads back as itself — so that one
// mailbox cannot hold two accounts under two spellings.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"Jane@Example.COM ", "jane@example", "Jane <jane@example.com>", `"a b"@example.com`, "a@b.c.", "a@[127.0.0.1]", "İ@example.com", "a@example.com\x00", strings.Repeat("a", 250) + "@b.co"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		email, err := account.NormalizeEmail(raw)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("NormalizeEmail(%q): got %v, want VALIDATION", raw, err)
			}
			return
		}
		if len(email) > 254 || email != strings.ToLower(email) || strings.ContainsAny(email, " \t\r\n<>") || strings.Count(email, "@") < 1 {
			t.Fatalf("NormalizeEmail(%q) = %q", raw, email)
		}
		if again, err := account.NormalizeEmail(email); err != nil || again != email {
			t.Fatalf("NormalizeEmail(%q) = %q, which normalises to %q (%v)", raw, email, again, err)
		}
	})
}

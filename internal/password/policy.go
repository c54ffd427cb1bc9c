package password

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// MinLen and MaxLen bound a new password's length in Unicode code points.
// MaxLen is generous for passphrases and password managers while keeping
// absurd inputs out.
const (
	MinLen = 8
	MaxLen = 128
)

// Reason is the machine-readable cause of a Weakness.
type Reason string

// Reasons Check gives for refusing a password.
const (
	// TooShort means fewer than MinLen code points.
	TooShort Reason = "TOO_SHORT"
	// TooLong means more than MaxLen code points.
	TooLong Reason = "TOO_LONG"
	// Common means the password is in the common-password list, so it is
	// among the first guesses of any attacker.
	Common Reason = "COMMON"
	// ContainsEmail means the password is or contains the account's email.
	ContainsEmail Reason = "CONTAINS_EMAIL"
)

// Weakness is the error Check returns for a password it refuses. Reason is
// for code; Message is a sentence a user can act on.
type Weakness struct {
	Reason  Reason
	Message string
}

// Error returns the Message.
func (w *Weakness) Error() string { return w.Message }

// Check returns nil if password is acceptable for the account with the given
// email, or a *Weakness saying why not. The rules, checked in this order:
// TooShort or TooLong outside MinLen..MaxLen code points; Common if the
// password, trimmed and lowercased, is in the common-password list;
// ContainsEmail if it equals the email or its local part, or contains the
// local part when that is at least 4 characters long (all case-insensitive).
// There are deliberately no composition rules (digits, symbols, case): they
// push people to predictable patterns without making passwords stronger.
func Check(password, email string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinLen:
		return &Weakness{TooShort, fmt.Sprintf("Use at least %d characters.", MinLen)}
	case n > MaxLen:
		return &Weakness{TooLong, fmt.Sprintf("Use at most %d characters.", MaxLen)}
	}

	folded := strings.ToLower(strings.TrimSpace(password))
	if _, ok := commonPasswords()[folded]; ok {
		return &Weakness{Common, "This password is too common. Try a few unrelated words instead."}
	}

	if containsEmail(folded, email) {
		return &Weakness{ContainsEmail, "Don't use your email address in your password."}
	}
	return nil
}

// containsEmail expects folded to be trimmed and lowercased already.
func containsEmail(folded, email string) bool {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return false
	}
	local := email
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		local = email[:i]
	}
	switch {
	case folded == email, local != "" && folded == local:
		return true
	case utf8.RuneCountInString(local) >= 4:
		return strings.Contains(folded, local)
	}
	return false
}

//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords builds the set on first use, so that processes that never
// check a password (workers, migrations) do not pay for 30,000 map entries.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, strings.Count(commonPasswordsFile, "\n")+1)
	for line := range strings.Lines(commonPasswordsFile) {
		if pw := strings.TrimSpace(line); pw != "" {
			set[pw] = struct{}{}
		}
	}
	return set
})

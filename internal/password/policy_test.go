package password

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		password string
		email    string
		want     Reason // "" means accepted
	}{
		{"passphrase", "correct horse battery staple", "alice.smith@example.com", ""},
		{"exactly MinLen", "zq8#vk2m", "alice.smith@example.com", ""},
		{"exactly MaxLen", strings.Repeat("zq8#", MaxLen/4), "alice.smith@example.com", ""},
		{"no composition rules", "bonfire lanterns", "alice.smith@example.com", ""},
		{"eight code points in sixteen bytes", "éèêëàâäç", "alice.smith@example.com", ""},
		{"no email", "correct horse battery staple", "", ""},
		{"short local part contained", "bonfire lanterns", "bo@example.com", ""},

		{"empty", "", "alice.smith@example.com", TooShort},
		{"seven characters", "zq8#vk2", "alice.smith@example.com", TooShort},
		{"seven code points in fourteen bytes", "éèêëàâä", "alice.smith@example.com", TooShort},
		{"one over MaxLen", strings.Repeat("a", MaxLen+1), "alice.smith@example.com", TooLong},
		{"multibyte over MaxLen", strings.Repeat("é", MaxLen+1), "alice.smith@example.com", TooLong},

		{"password", "password", "alice.smith@example.com", Common},
		{"123456789", "123456789", "alice.smith@example.com", Common},
		{"qwerty123", "qwerty123", "alice.smith@example.com", Common},
		{"mixed case", "PassWord", "alice.smith@example.com", Common},
		{"surrounding spaces", "  iloveyou  ", "alice.smith@example.com", Common},

		{"equals email", "alice.smith@example.com", "alice.smith@example.com", ContainsEmail},
		{"equals email other case", "Alice.Smith@Example.com", "ALICE.SMITH@example.COM", ContainsEmail},
		{"equals local part", "alice.smith", "alice.smith@example.com", ContainsEmail},
		{"contains local part", "alice.smith1990!", "alice.smith@example.com", ContainsEmail},
		{"contains local part other case", "my name is ALICE.SMITH", "alice.smith@example.com", ContainsEmail},
		{"equals email with short local part", "bo@example.com", "bo@example.com", ContainsEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.password, tt.email)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Check(%q, %q): got %v, want nil", tt.password, tt.email, err)
				}
				return
			}
			var w *Weakness
			if !errors.As(err, &w) {
				t.Fatalf("Check(%q, %q): got %v, want a *Weakness", tt.password, tt.email, err)
			}
			if w.Reason != tt.want {
				t.Errorf("Check(%q, %q) reason: got %v, want %v", tt.password, tt.email, w.Reason, tt.want)
			}
			if w.Message == "" || w.Error() != w.Message {
				t.Errorf("Check(%q, %q) message: got %q, want a non-empty sentence as Error()", tt.password, tt.email, w.Message)
			}
		})
	}
}

func TestCommonPasswordsList(t *testing.T) {
	if got := len(commonPasswords()); got < 10000 {
		t.Errorf("common passwords: got %v, want at least %v", got, 10000)
	}

	// Check folds the password before the lookup, so an entry that is not
	// already folded, or a duplicate, would be dead weight.
	seen := make(map[string]int)
	for i, line := range strings.Split(strings.TrimSuffix(commonPasswordsFile, "\n"), "\n") {
		if want := strings.ToLower(strings.TrimSpace(line)); line != want || line == "" {
			t.Errorf("line %d: got %q, want %q non-empty", i+1, line, want)
		}
		if first, ok := seen[line]; ok {
			t.Errorf("line %d: got %q, want no duplicate of line %d", i+1, line, first)
		}
		seen[line] = i + 1
	}
}

package password

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// fastParams keep the tests quick under -race; the tests that are about the
// production cost use DefaultParams.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	tests := []struct {
		name     string
		password string
		wrong    string
	}{
		{"ascii", "correct horse battery staple", "correct horse battery stapler"},
		{"case matters", "Secret-Passphrase", "secret-passphrase"},
		{"unicode", "пароль-密码-🔑", "пароль-密码-🔒"},
		{"empty", "", " "},
		{"long", strings.Repeat("x", 4096), strings.Repeat("x", 4095)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, err := Hash(tt.password, fastParams)
			if err != nil {
				t.Fatalf("Hash: got %v, want nil", err)
			}
			ok, err := Verify(tt.password, encoded)
			if !ok || err != nil {
				t.Errorf("Verify(right password): got %v, %v, want true, nil", ok, err)
			}
			ok, err = Verify(tt.wrong, encoded)
			if ok || err != nil {
				t.Errorf("Verify(wrong password): got %v, %v, want false, nil", ok, err)
			}
		})
	}
}

func TestHashDefaultParamsFormat(t *testing.T) {
	encoded, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		t.Fatalf("Hash: got %v, want nil", err)
	}

	parts := strings.Split(encoded, "$")
	if len(parts) != 6 {
		t.Fatalf("fields in %q: got %v, want 6", encoded, len(parts))
	}
	if got, want := strings.Join(parts[:4], "$"), "$argon2id$v=19$m=19456,t=2,p=1"; got != want {
		t.Errorf("prefix: got %v, want %v", got, want)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		t.Fatalf("decode salt %q: got %v, want nil", parts[4], err)
	}
	if len(salt) != 16 {
		t.Errorf("salt length: got %v, want %v", len(salt), 16)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatalf("decode key %q: got %v, want nil", parts[5], err)
	}
	if len(key) != 32 {
		t.Errorf("key length: got %v, want %v", len(key), 32)
	}

	ok, err := Verify("correct horse battery staple", encoded)
	if !ok || err != nil {
		t.Errorf("Verify: got %v, %v, want true, nil", ok, err)
	}

	again, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		t.Fatalf("Hash again: got %v, want nil", err)
	}
	if again == encoded {
		t.Errorf("two hashes of one password: got equal %v, want different salts", again)
	}
}

func TestDefaultParams(t *testing.T) {
	want := Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if DefaultParams != want {
		t.Errorf("DefaultParams: got %+v, want %+v", DefaultParams, want)
	}
}

func TestHashRejectsBadParams(t *testing.T) {
	tests := []struct {
		name string
		edit func(p *Params)
	}{
		{"zero time", func(p *Params) { p.Time = 0 }},
		{"zero threads", func(p *Params) { p.Threads = 0 }},
		{"memory below 8 KiB per thread", func(p *Params) { p.Memory, p.Threads = 15, 2 }},
		{"memory above limit", func(p *Params) { p.Memory = maxMemory + 1 }},
		{"short salt", func(p *Params) { p.SaltLen = 4 }},
		{"short key", func(p *Params) { p.KeyLen = 8 }},
		{"zero value", func(p *Params) { *p = Params{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fastParams
			tt.edit(&p)
			encoded, err := Hash("correct horse battery staple", p)
			if err == nil {
				t.Errorf("Hash(%+v): got %q, nil, want an error", p, encoded)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt = "c29tZXNhbHRzb21lc2FsdA"                     // 16 bytes
	const key = "dGhpcnR5LXR3by1ieXRlcy1vZi1rZXktbWF0ZXJpYWw" // 32 bytes
	valid := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, _, _, err := decode(valid); err != nil {
		t.Fatalf("decode(%q): got %v, want nil", valid, err)
	}

	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"dollar", "$"},
		{"plain text", "hunter2"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"extra field", valid + "$" + key},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"two params", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"non-numeric", "$argon2id$v=19$m=abc,t=1,p=1$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"empty number", "$argon2id$v=19$m=,t=1,p=1$" + salt + "$" + key},
		{"space", "$argon2id$v=19$m=64, t=1,p=1$" + salt + "$" + key},
		{"memory overflows uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"memory too large", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"memory below 8 KiB per thread", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key},
		{"zero time", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"time too large", "$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + key},
		{"zero threads", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"threads overflow uint8", "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key},
		{"salt not base64", "$argon2id$v=19$m=64,t=1,p=1$not*base64$" + key},
		{"salt padded", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"salt too short", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"empty salt", "$argon2id$v=19$m=64,t=1,p=1$$" + key},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"key too short", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5"},
		{"key url alphabet", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("_", 43)},
		{"trailing newline", valid + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify("hunter2", tt.encoded)
			if ok {
				t.Errorf("Verify(%q): got ok %v, want %v", tt.encoded, ok, false)
			}
			if !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Verify(%q): got error %v, want %v", tt.encoded, err, ErrMalformedHash)
			}
		})
	}
}

// FuzzDecode checks that no input makes decode panic and that whatever it
// accepts is the one canonical spelling encode would write.
func FuzzDecode(f *testing.F) {
	f.Add(dummyHash)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$dGhpcnR5LXR3by1ieXRlcy1vZi1rZXktbWF0ZXJpYWw")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=255$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := decode(encoded)
		if err != nil {
			return
		}
		if got := encode(p, salt, key); got != encoded {
			t.Errorf("encode(decode(%q)): got %q, want the input", encoded, got)
		}
	})
}

func TestNeedsRehash(t *testing.T) {
	mustHash := func(p Params) string {
		t.Helper()
		encoded, err := Hash("correct horse battery staple", p)
		if err != nil {
			t.Fatalf("Hash(%+v): got %v, want nil", p, err)
		}
		return encoded
	}
	longerKey := DefaultParams
	longerKey.KeyLen = 64

	tests := []struct {
		name    string
		encoded string
		p       Params
		want    bool
	}{
		{"weaker params", mustHash(fastParams), DefaultParams, true},
		{"current params", mustHash(DefaultParams), DefaultParams, false},
		{"different key length", mustHash(longerKey), DefaultParams, true},
		{"stronger stored params", mustHash(DefaultParams), fastParams, true},
		{"malformed", "$argon2id$v=19$m=garbage", DefaultParams, true},
		{"dummy hash is current", dummyHash, DefaultParams, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsRehash(tt.encoded, tt.p); got != tt.want {
				t.Errorf("NeedsRehash(%q, %+v): got %v, want %v", tt.encoded, tt.p, got, tt.want)
			}
		})
	}
}

func TestDummyVerify(t *testing.T) {
	// DummyVerify has no result; what matters is that its hash parses, or it
	// would return at once and an unknown email would answer faster.
	if _, _, _, err := decode(dummyHash); err != nil {
		t.Fatalf("decode(dummyHash): got %v, want nil", err)
	}
	DummyVerify("correct horse battery staple")
}

// An unusable hash is well formed, so a sign-in to its account is refused
// like a wrong password (not with an error), whatever the password; and
// two are never alike.
func TestUnusable(t *testing.T) {
	a, b := Unusable(), Unusable()
	if a == b {
		t.Fatal("two unusable hashes are equal")
	}
	if NeedsRehash(a, DefaultParams) {
		t.Errorf("NeedsRehash(%q): true, want a hash with DefaultParams", a)
	}
	for _, pw := range []string{"", "correct horse battery staple", a} {
		if ok, err := Verify(pw, a); ok || err != nil {
			t.Errorf("Verify(%q, unusable): got %v, %v, want false, nil", pw, ok, err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hash("correct horse battery staple", DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	encoded, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := Verify("correct horse battery staple", encoded); !ok || err != nil {
			b.Fatalf("Verify: got %v, %v, want true, nil", ok, err)
		}
	}
}

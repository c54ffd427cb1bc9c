// Package password hashes and verifies passwords with argon2id and decides
// whether a new password is strong enough to accept.
//
// Hashes are stored as PHC strings
// ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>", base64 without padding),
// so every hash carries the parameters it was made with and old hashes keep
// verifying after DefaultParams changes; NeedsRehash says when to upgrade one.
//
// common-passwords.txt is the "passwords" frequency list of zxcvbn 4.4.2
// (lib/frequency_lists.js, most common first), MIT licensed,
// Copyright (c) 2012-2016 Dan Wheeler and Dropbox, Inc.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters and the sizes of salt and key.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are the parameters for new hashes: the OWASP-recommended
// argon2id configuration of 19 MiB, 2 passes, 1 thread, with a 16-byte salt
// and a 32-byte key.
var DefaultParams = Params{
	Memory:  19 * 1024,
	Time:    2,
	Threads: 1,
	SaltLen: 16,
	KeyLen:  32,
}

// ErrMalformedHash is returned (wrapped) by Verify when the stored string is
// not an argon2id PHC string this package can verify.
var ErrMalformedHash = errors.New("password: malformed hash")

// Limits on parameters. Stored hashes are parsed before anything else, so
// these keep a corrupted or hostile row from making Verify allocate gigabytes
// or spin for minutes.
const (
	minSaltLen = 8 // RFC 9106
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
	maxMemory  = 256 * 1024 // KiB
	maxTime    = 16
	maxThreads = 16
)

// dummyHash is the hash of a random password nobody kept. It has
// DefaultParams (a test keeps it so) so that DummyVerify costs what Verify
// costs for an account with an up-to-date hash.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$KceCcGn/f2ZW/vJMYPzNpQ$V+8RvNNkeJ621ycVIu9AOZvg+vOR9fMEMwTMa0R+RFM"

var b64 = base64.RawStdEncoding.Strict()

// Hash derives a key from password with argon2id under p and a fresh random
// salt, and returns it as a PHC string. It returns an error if p is out of
// the range Verify accepts.
func Hash(password string, p Params) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	salt, err := newSalt(p.SaltLen)
	if err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encode(p, salt, key), nil
}

// Verify reports whether password matches encoded, a PHC string made by Hash.
// A wrong password gives (false, nil); an encoded string that cannot be
// parsed gives (false, err) with err wrapping ErrMalformedHash.
func Verify(password, encoded string) (ok bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return constantTimeEqual(got, key), nil
}

// Unusable returns a well-formed hash (DefaultParams) that no password
// matches: its key is random bytes, not derived from any password. It is
// for accounts nobody may sign in to (an erased user's tombstone): Verify
// says false, as for a wrong password, rather than failing on a malformed
// hash.
func Unusable() string {
	p := DefaultParams
	salt, key := make([]byte, p.SaltLen), make([]byte, p.KeyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return encode(p, salt, key)
}

func newSalt(n uint32) ([]byte, error) {
	salt := make([]byte, n)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("password: read salt: %w", err)
	}
	return salt, nil
}

func constantTimeEqual(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}

// NeedsRehash reports whether encoded was made with parameters other than p,
// so that a sign-in that just verified the password should store a fresh
// Hash(password, p). It also returns true when encoded cannot be parsed.
func NeedsRehash(encoded string, p Params) bool {
	stored, _, _, err := decode(encoded)
	return err != nil || stored != p
}

// DummyVerify does the work of Verify against a fixed hash and discards the
// result. Sign-in calls it when no account has the given email, so that an
// unknown email takes as long to refuse as a wrong password and response
// times do not reveal which emails have accounts.
func DummyVerify(password string) {
	_, _ = Verify(password, dummyHash)
}

func (p Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("password: time %d out of range [1, %d]", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("password: threads %d out of range [1, %d]", p.Threads, maxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		// argon2 needs 8 KiB per thread (RFC 9106) and would silently raise a
		// smaller value, making the stored m= a lie.
		return fmt.Errorf("password: memory %d KiB out of range [%d, %d]", p.Memory, 8*uint32(p.Threads), maxMemory)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("password: salt length %d out of range [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("password: key length %d out of range [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses "$argon2id$v=19$m=M,t=T,p=P$salt$key". It is the inverse of
// encode and accepts only what encode can produce from valid Params, so a
// stored hash has exactly one spelling.
func decode(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, fmt.Errorf("%w: want 5 $-separated fields", ErrMalformedHash)
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: algorithm %q, want argon2id", ErrMalformedHash, parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: version %q, want v=%d", ErrMalformedHash, parts[2], argon2.Version)
	}

	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, fmt.Errorf("%w: parameters %q, want m=,t=,p=", ErrMalformedHash, parts[3])
	}
	memory, err1 := parseParam(fields[0], "m=", 32)
	time, err2 := parseParam(fields[1], "t=", 32)
	threads, err3 := parseParam(fields[2], "p=", 8)
	if err := errors.Join(err1, err2, err3); err != nil {
		return p, nil, nil, fmt.Errorf("%w: parameters %q: %w", ErrMalformedHash, parts[3], err)
	}

	salt, err = decodeBase64(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: salt: %w", ErrMalformedHash, err)
	}
	key, err = decodeBase64(parts[5])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: key: %w", ErrMalformedHash, err)
	}

	p = Params{
		Memory:  uint32(memory),
		Time:    uint32(time),
		Threads: uint8(threads),
		SaltLen: uint32(len(salt)),
		KeyLen:  uint32(len(key)),
	}
	if err := p.validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	return p, salt, key, nil
}

// decodeBase64 also refuses the CR and LF that the base64 decoder skips.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return b64.DecodeString(s)
}

// parseParam parses "m=19456" given prefix "m=". It refuses signs, spaces and
// leading zeros, which PHC forbids and Hash never writes.
func parseParam(field, prefix string, bitSize int) (uint64, error) {
	digits, ok := strings.CutPrefix(field, prefix)
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, fmt.Errorf("field %q, want %sN", field, prefix)
	}
	n, err := strconv.ParseUint(digits, 10, bitSize)
	if err != nil {
		return 0, fmt.Errorf("field %q: %w", field, err)
	}
	return n, nil
}

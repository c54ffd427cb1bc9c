package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// newToken returns a fresh secret for a session or an emailed link (32
// random bytes, base64url) and the SHA-256 that is all we store of it.
func newToken() (token string, hash []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

// hashToken is how a presented token is looked up. Lookup by an exact hash
// in a unique index leaks nothing about the secret through timing: an
// attacker can only learn whether a guessed 256-bit value exists.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// validTokenShape rejects strings that cannot be a token before any lookup.
func validTokenShape(token string) bool {
	if len(token) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

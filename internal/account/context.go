package account

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

// Client is who is calling, as far as the network tells: the client IP (after
// trusted proxies) and the user agent.
type Client struct {
	IP        string
	UserAgent string
}

// Bounds of the client strings kept with sessions and security events (and
// so in every row a stranger's request may write).
const (
	MaxUserAgentBytes = 512
	maxIPBytes        = 64
)

type clientKey struct{}

// WithClient returns ctx carrying the caller's network identity, its strings
// made valid UTF-8 and cut to MaxUserAgentBytes and 64 bytes: they come from
// the client and end up in rows and logs.
func WithClient(ctx context.Context, c Client) context.Context {
	c.IP = Truncate(c.IP, maxIPBytes)
	c.UserAgent = Truncate(c.UserAgent, MaxUserAgentBytes)
	return context.WithValue(ctx, clientKey{}, c)
}

// Truncate returns s as valid UTF-8 without NUL (invalid bytes and NULs
// replaced, as Postgres text refuses them) of at most n bytes, cut at a
// character boundary: what may be stored or logged of a string a client sent.
func Truncate(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ClientFrom returns the caller's network identity (empty when unknown).
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// Viewer is the signed-in caller: the user and the session they came with,
// or, for a partner app, the API key (then Session is nil).
type Viewer struct {
	User    *User
	Session *Session
	Key     *KeyGrant
}

// KeyGrant is what an API key adds to its user: which key, and the scopes
// it is limited to.
type KeyGrant struct {
	ID     uuid.UUID
	Scopes []actor.Scope
}

type authKey struct{}

type auth struct {
	viewer *Viewer
	err    error // why presented credentials were refused
}

// WithAuth returns ctx carrying the result of authenticating the request: a
// viewer, or the error that presented credentials met (nil, nil when none
// were presented).
func WithAuth(ctx context.Context, v *Viewer, err error) context.Context {
	return context.WithValue(ctx, authKey{}, auth{viewer: v, err: err})
}

// Optional returns the signed-in viewer or nil for an anonymous caller.
// Returns the credentials' error (UNAUTHENTICATED, ACCOUNT_SUSPENDED) when the
// caller presented a session that no longer works: such a caller must learn
// that, not be quietly treated as anonymous.
func Optional(ctx context.Context) (*Viewer, error) {
	a, _ := ctx.Value(authKey{}).(auth)
	return a.viewer, a.err
}

// Require returns the signed-in viewer.
// Returns UNAUTHENTICATED or ACCOUNT_SUSPENDED otherwise.
func Require(ctx context.Context) (*Viewer, error) {
	v, err := Optional(ctx)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, apperr.Errorf(apperr.Unauthenticated, "Sign in first.")
	}
	return v, nil
}

// Actor returns the signed-in caller as the actor of domain calls.
// Returns UNAUTHENTICATED or ACCOUNT_SUSPENDED otherwise.
func Actor(ctx context.Context) (actor.Actor, error) {
	v, err := Require(ctx)
	if err != nil {
		return actor.Actor{}, err
	}
	return v.Actor(), nil
}

// Actor returns the viewer as the actor of domain calls.
func (v *Viewer) Actor() actor.Actor {
	a := actor.Actor{
		UserID: v.User.ID, Role: actor.Role(v.User.Role),
		Verified: v.User.EmailVerified(), Email: v.User.Email,
	}
	if v.Session != nil {
		a.SessionID = v.Session.ID
	}
	if v.Key != nil {
		// A key's Scopes are never nil (nil means a session), even if the
		// key somehow held none.
		a.Scopes = append(make([]actor.Scope, 0, len(v.Key.Scopes)), v.Key.Scopes...)
		a.APIKeyID = v.Key.ID
	}
	return a
}

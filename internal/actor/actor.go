// Package actor says who performs a domain call, and holds the one contract
// of authorization in this service.
//
// The contract:
//
//   - Every domain entry point that acts for someone takes an Actor as its
//     first argument after ctx, and decides itself what that actor may see
//     or do. It never trusts that a resolver (or any other caller) checked.
//   - An object of another user is NOT_FOUND, exactly like one that does not
//     exist: a stranger learns nothing from an id. Reads by id filter on the
//     actor's user in the query itself (Owns / the package's owner clause),
//     never in Go after the fact.
//   - Account-wide reads of one user (credits, the ledger) are the owner's
//     and, for support, an admin's (ReadAccount). Admin-only actions check
//     RequireAdmin; spending flows check RequireVerified.
//   - API keys are actors with Scopes; RequireScope is the one place a
//     scope is checked, and RequireSession keeps keys out of what only the
//     signed-in user may do.
//   - Functions that take a plain user id instead of an Actor are internal:
//     called by workers and other domains for a user they already
//     authorized, never from graph/. Their doc comments say so.
//
// An Actor is a value built from an authenticated session (account.Viewer)
// and carries no secrets.
package actor

import (
	"github.com/google/uuid"

	"github.com/fastimage/api/internal/apperr"
)

// Role is what an actor's user may do.
type Role string

// The roles.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// Scope is a permission an API key may carry.
type Scope string

// The scopes of API keys. A key acts for the user who made it, within its
// scopes; sessions hold them all.
const (
	ScopeWorksRead   Scope = "works:read"
	ScopeWorksWrite  Scope = "works:write"
	ScopeGenerate    Scope = "generate"
	ScopeCreditsRead Scope = "credits:read"
	ScopeEventsRead  Scope = "events:read"
	ScopeWebhooks    Scope = "webhooks"
)

// Scopes lists every scope, in the order to show them.
var Scopes = []Scope{ScopeWorksRead, ScopeWorksWrite, ScopeGenerate, ScopeCreditsRead, ScopeEventsRead, ScopeWebhooks}

// Actor is who performs a domain call.
type Actor struct {
	// UserID is the user the actor acts for.
	UserID uuid.UUID
	// SessionID is the session the call came with (zero for other actors).
	SessionID uuid.UUID
	Role      Role
	// Verified is true once the user proved they own their email.
	Verified bool
	// Email is the user's address, for messages that tell them where to look.
	Email string
	// Scopes limit an API key; nil means a signed-in session, which has
	// every scope.
	Scopes []Scope
	// APIKeyID is the key the call came with (zero for sessions).
	APIKeyID uuid.UUID
}

// IsKey reports whether the actor is an API key.
func (a Actor) IsKey() bool { return a.Scopes != nil }

// RequireSession returns FORBIDDEN for API keys: account security,
// sessions, payments setup, privacy requests and keys themselves are for
// the signed-in user only, whatever a key's scopes.
func (a Actor) RequireSession() error {
	if !a.IsKey() {
		return nil
	}
	return apperr.Errorf(apperr.Forbidden, "API keys cannot do this; sign in to the editor.").With("session", true)
}

// Admin reports whether the actor is an administrator. An administrator's
// API key is not: a key acts for its user's own account, within its
// scopes, and administration (reading or acting on other users) is done
// signed in.
func (a Actor) Admin() bool { return a.Role == RoleAdmin && !a.IsKey() }

// Owns reports whether userID is the actor's own user.
func (a Actor) Owns(userID uuid.UUID) bool { return a.UserID == userID }

// ReadAccount allows account-wide reads of userID: by its owner and by
// admins. Returns FORBIDDEN otherwise.
func (a Actor) ReadAccount(userID uuid.UUID) error {
	if a.Owns(userID) || a.Admin() {
		return nil
	}
	return apperr.Errorf(apperr.Forbidden, "Only the account's owner may see this.")
}

// OwnAccount allows reads of userID's private record (sessions, security
// events, works) by its owner only. Returns FORBIDDEN otherwise.
func (a Actor) OwnAccount(userID uuid.UUID) error {
	if a.Owns(userID) {
		return nil
	}
	return apperr.Errorf(apperr.Forbidden, "Only the account's owner may see this.")
}

// RequireAdmin returns FORBIDDEN unless the actor is an administrator.
func (a Actor) RequireAdmin() error {
	if a.Admin() {
		return nil
	}
	return apperr.Errorf(apperr.Forbidden, "Only administrators may do this.")
}

// RequireVerified returns EMAIL_NOT_VERIFIED unless the actor's user
// verified their email: the check of every flow that touches credits,
// generation or payment.
func (a Actor) RequireVerified() error {
	if a.Verified {
		return nil
	}
	return apperr.Errorf(apperr.EmailNotVerified, "Verify your email address first: open the link we sent to %s, or ask for a new one.", a.Email)
}

// RequireScope returns FORBIDDEN, naming the scope, unless the actor holds
// it. Sessions hold every scope.
func (a Actor) RequireScope(s Scope) error {
	if a.Scopes == nil {
		return nil
	}
	for _, have := range a.Scopes {
		if have == s {
			return nil
		}
	}
	return apperr.Errorf(apperr.Forbidden, "This key lacks the %q scope.", s).With("scope", string(s))
}

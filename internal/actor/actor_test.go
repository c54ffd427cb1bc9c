package actor_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
)

// An administrator's API key has no admin reach: a key acts for its own
// user, within its scopes.
func TestAdminKeyIsNotAdmin(t *testing.T) {
	user, other := uuid.New(), uuid.New()
	session := actor.Actor{UserID: user, Role: actor.RoleAdmin}
	key := actor.Actor{UserID: user, Role: actor.RoleAdmin, Scopes: []actor.Scope{actor.ScopeCreditsRead}, APIKeyID: uuid.New()}
	if !session.Admin() || session.RequireAdmin() != nil || session.ReadAccount(other) != nil {
		t.Errorf("a signed-in administrator lost the admin reach")
	}
	if key.Admin() || key.RequireAdmin() == nil || key.ReadAccount(other) == nil {
		t.Errorf("an administrator's key has the admin reach")
	}
	if key.ReadAccount(user) != nil {
		t.Errorf("an administrator's key cannot read its own user's account")
	}
}

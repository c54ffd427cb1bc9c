package account_test

import (
	"context"
	"testing"
	"time"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
)

func TestActorChecks(t *testing.T) {
	verified := time.Now()
	user := &account.User{Email: "u@example.com", Role: account.RoleUser}
	verifiedUser := &account.User{Email: "v@example.com", Role: account.RoleUser, EmailVerifiedAt: &verified}
	admin := &account.User{Email: "a@example.com", Role: account.RoleAdmin, EmailVerifiedAt: &verified}
	viewer := func(u *account.User) context.Context {
		return account.WithAuth(context.Background(), &account.Viewer{User: u, Session: &account.Session{}}, nil)
	}
	suspended := account.WithAuth(context.Background(), nil, apperr.Errorf(apperr.AccountSuspended, "suspended"))
	verifiedCheck := func(a actor.Actor) error { return a.RequireVerified() }
	adminCheck := func(a actor.Actor) error { return a.RequireAdmin() }

	tests := []struct {
		name  string
		ctx   context.Context
		check func(actor.Actor) error
		want  apperr.Code
	}{
		{"anonymous needs sign-in", context.Background(), nil, apperr.Unauthenticated},
		{"presented credentials keep their error", suspended, nil, apperr.AccountSuspended},
		{"signed in", viewer(user), nil, ""},
		{"unverified refused where credits are involved", viewer(user), verifiedCheck, apperr.EmailNotVerified},
		{"verified passes", viewer(verifiedUser), verifiedCheck, ""},
		{"a user is no admin", viewer(verifiedUser), adminCheck, apperr.Forbidden},
		{"an admin is", viewer(admin), adminCheck, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := account.Actor(tc.ctx)
			if err == nil && tc.check != nil {
				err = tc.check(a)
			}
			if got := apperr.CodeOf(err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		"  Ada@Example.COM ":    "ada@example.com",
		"grace.hopper@navy.mil": "grace.hopper@navy.mil",
	} {
		if got, err := account.NormalizeEmail(in); err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "a@b", "Ada <ada@example.com>", "a@example.com.", "a@@example.com", "x@example.com\r\nBcc: y@example.com"} {
		if _, err := account.NormalizeEmail(bad); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("NormalizeEmail(%q): got %v, want VALIDATION", bad, err)
		}
	}
}

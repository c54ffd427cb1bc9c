package server_test

import (
	"context"
	"testing"
)

const creditsQuery = `{ viewer { credits { balance available held }
	creditEntries(first: 10) { totalCount edges { node { kind amount balanceAfter expiresAt reason reference { id } } } } } }`

type creditsView struct {
	Viewer struct {
		Credits       struct{ Balance, Available, Held int }
		CreditEntries struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					Kind         string
					Amount       int
					BalanceAfter int
					Reason       *string
				}
			}
		}
	}
}

func TestSignupBonusAndAdjustments(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := s.client(t)

	// Unverified: no bonus yet.
	c.must(signUpMutation, map[string]any{"email": "credits@example.com", "password": goodPassword}, nil)
	unverified, _ := signIn(t, s, "credits@example.com", goodPassword)
	var v creditsView
	unverified.must(creditsQuery, nil, &v)
	if v.Viewer.Credits.Balance != 0 || v.Viewer.CreditEntries.TotalCount != 0 {
		t.Fatalf("credits before verifying: %+v", v.Viewer)
	}
	token := s.linkToken(t, "credits@example.com", "verify_email")
	c.must(verifyMutation, map[string]any{"token": token}, nil)
	unverified.must(creditsQuery, nil, &v)
	if v.Viewer.Credits != (struct{ Balance, Available, Held int }{25, 25, 0}) || v.Viewer.CreditEntries.Edges[0].Node.Kind != "SIGNUP_BONUS" {
		t.Fatalf("after verifying: %+v", v.Viewer)
	}

	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}
	var who struct{ Viewer struct{ ID string } }
	unverified.must(`{ viewer { id } }`, nil, &who)

	adjust := `mutation($u: ID!, $a: Int!, $r: String!) { adjustCredits(input: {userId: $u, amount: $a, reason: $r}) {
		entry { kind amount balanceAfter reason } credits { balance available } } }`
	unverified.fails("FORBIDDEN", adjust, map[string]any{"u": who.Viewer.ID, "a": 100, "r": "me"})
	admin.fails("INSUFFICIENT_CREDITS", adjust, map[string]any{"u": who.Viewer.ID, "a": -26, "r": "too much"})
	admin.fails("VALIDATION", adjust, map[string]any{"u": who.Viewer.ID, "a": 5, "r": " "})
	admin.must(adjust, map[string]any{"u": who.Viewer.ID, "a": -5, "r": "duplicate bonus"}, nil)
	unverified.must(creditsQuery, nil, &v)
	top := v.Viewer.CreditEntries.Edges[0].Node
	if v.Viewer.Credits.Balance != 20 || top.Kind != "ADJUSTMENT" || top.Amount != -5 || top.BalanceAfter != 20 || top.Reason == nil || *top.Reason != "duplicate bonus" {
		t.Fatalf("after an adjustment: %+v / %+v", v.Viewer.Credits, top)
	}

	// Another user cannot read them.
	other, _ := mustSignUp(t, s, "other@example.com")
	var node struct {
		Node *struct{ Credits *struct{ Balance int } }
	}
	other.must(`query($id: ID!) { node(id: $id) { ... on User { credits { balance } } } }`, map[string]any{"id": who.Viewer.ID}, &node)
	if node.Node != nil {
		t.Fatalf("another user sees this user through node(): %+v", node.Node)
	}
}

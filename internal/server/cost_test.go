package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/credit"
)

// Fields cost what they do: a password hash and a page of 100 are not one
// field's worth each, as gqlgen's default estimate had them.
func TestCostsReported(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	c := s.client(t)
	me, _ := mustSignUp(t, s, "costs@example.com")
	complexity := func(out gqlResponse) float64 {
		t.Helper()
		cost, _ := out.Extensions["cost"].(map[string]any)
		n, _ := cost["requestedQueryCost"].(float64)
		return n
	}
	if out := c.do(`mutation { signIn(input: {email: "nobody@example.com", password: "not the password"}) { token } }`, nil); out.code() != "INVALID_CREDENTIALS" || complexity(out) < 2000 {
		t.Errorf("signIn: code %q, cost %v; want INVALID_CREDENTIALS and a complexity of at least 2000 (a password hash)", out.code(), out.Extensions["cost"])
	}
	page := func(first int) float64 {
		out := me.do(fmt.Sprintf(`{ viewer { works(first: %d) { edges { node { id title images { url } } } } } }`, first), nil)
		if len(out.Errors) > 0 {
			t.Fatalf("works(first: %d): %v", first, out.Errors)
		}
		return complexity(out)
	}
	// Each work selects at least 4 fields (node, id, title, images).
	if one, hundred := page(1), page(100); hundred-one < 99*4 {
		t.Errorf("works(first: 1) costs %v, works(first: 100) %v; want 99 more works to cost at least %d more", one, hundred, 99*4)
	}
}

// A page of ledger entries with their references loads the references in
// one query per type, not one per entry: the statements run do not grow
// with the page.
func TestCreditEntryReferencesBatched(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, id := mustSignUp(t, s, "refs@example.com")
	user := uuidOfGlobal(t, id)
	ledger := credit.New(s.db)
	for i := range 40 {
		ref := credit.Ref{Type: "Generation", ID: uuid.NewString()} // gone: null
		if i%2 == 0 {
			w, err := s.gallery.Upload(context.Background(), actor.Actor{UserID: user}, workUpload(fmt.Sprint("work ", i)))
			if err != nil {
				t.Fatal(err)
			}
			ref = credit.Ref{Type: "Work", ID: w.ID.String()}
		}
		if _, err := ledger.Post(context.Background(), credit.Posting{
			UserID: user, Amount: 1, Kind: credit.Purchase, Ref: ref, IdempotencyKey: fmt.Sprint("refs-", i),
		}); err != nil {
			t.Fatal(err)
		}
	}

	statements := func(first int) int64 {
		t.Helper()
		q := fmt.Sprintf(`{ viewer { creditEntries(first: %d) { edges { node { id reference { id ... on Work { title } } } } }
			creditHolds(first: %d) { edges { node { id reference { id } } } } } }`, first, first)
		before := s.queries.n.Load()
		var out struct {
			Viewer struct {
				CreditEntries struct {
					Edges []struct {
						Node struct {
							Reference *struct{ ID, Title string }
						}
					}
				}
			}
		}
		me.must(q, nil, &out)
		works := 0
		for _, e := range out.Viewer.CreditEntries.Edges {
			if e.Node.Reference != nil && strings.HasPrefix(e.Node.Reference.Title, "work ") {
				works++
			}
		}
		if want := first / 2; works != want {
			t.Errorf("first %d: %d entries reference a work, want %d", first, works, want)
		}
		return s.queries.n.Load() - before
	}
	small, big := statements(4), statements(40)
	t.Logf("SQL statements: %d for 4 entries, %d for 40", small, big)
	if big != small {
		t.Errorf("SQL statements: %d for 4 entries, %d for 40; want the same", small, big)
	}
}

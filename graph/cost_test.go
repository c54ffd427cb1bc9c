package graph

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

// listsSizedElsewhere are lists of objects whose size is costed on another
// field: the mutation whose input names them.
var listsSizedElsewhere = map[string]string{
	"RestoreWorksPayload.works": "Mutation.restoreWorks costs len(workIds) × its selection",
}

func costedSchema() *executableSchema {
	cfg := Config{}
	SetCosts(&cfg.Complexity)
	return NewExecutableSchema(cfg).(*executableSchema)
}

// Every connection costs its page size times its selection, and every other
// list of objects has a cost of its own: a field left at gqlgen's default
// costs 1 whatever its size, so aliases of it multiply work within the
// limit. A new connection or list fails here until it gets a cost in
// SetCosts.
func TestEveryListHasACost(t *testing.T) {
	es := costedSchema()
	ctx := context.Background()
	const child = 7
	var names []string
	for name := range es.Schema().Types {
		names = append(names, name)
	}
	sort.Strings(names)
	checked := 0
	for _, typeName := range names {
		def := es.Schema().Types[typeName]
		if def.Kind != ast.Object || strings.HasPrefix(typeName, "__") {
			continue
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			field := typeName + "." + f.Name
			target := es.Schema().Types[f.Type.Name()]
			switch {
			case strings.HasSuffix(f.Type.Name(), "Connection"):
				checked++
				if f.Arguments.ForName("first") == nil {
					t.Errorf("%s returns a connection without a first argument", field)
					continue
				}
				one, ok1 := es.Complexity(ctx, typeName, f.Name, child, map[string]any{"first": 1})
				hundred, ok100 := es.Complexity(ctx, typeName, f.Name, child, map[string]any{"first": 100})
				if !ok1 || !ok100 {
					t.Errorf("%s has no complexity function; give it one in SetCosts", field)
					continue
				}
				if hundred < 100*child || hundred <= one {
					t.Errorf("%s(first: 100) with a selection of %d costs %d (first: 1 costs %d); want at least %d", field, child, hundred, one, 100*child)
				}
			case f.Type.Elem != nil && target.Kind != ast.Scalar && target.Kind != ast.Enum:
				if strings.HasSuffix(typeName, "Connection") && f.Name == "edges" {
					continue // sized by the connection
				}
				if _, ok := listsSizedElsewhere[field]; ok {
					continue
				}
				checked++
				args := map[string]any{}
				for _, a := range f.Arguments {
					if a.Type.Elem != nil {
						args[a.Name] = make([]any, 100)
						for i := range 100 {
							args[a.Name].([]any)[i] = "x"
						}
					}
				}
				got, ok := es.Complexity(ctx, typeName, f.Name, child, args)
				if !ok {
					t.Errorf("%s is a list with no complexity function; give it one in SetCosts", field)
					continue
				}
				if got <= child+1 {
					t.Errorf("%s with a selection of %d costs %d; want more than one item's %d", field, child, got, child+1)
				}
			}
		}
	}
	if checked < 8 {
		t.Errorf("checked %d connections and lists; want at least 8 (User.works, generations, creditEntries, creditHolds, securityEvents, sessions, Work.images, Query.nodes)", checked)
	}
}

// Fields whose work grows with a list in their input cost per item.
func TestListInputsCostPerItem(t *testing.T) {
	es := costedSchema()
	ids := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = "x"
		}
		return out
	}
	for _, tc := range []struct{ typ, field, arg, list string }{
		{"Query", "nodes", "ids", ""},
		{"Mutation", "deleteWorks", "input", "workIds"},
		{"Mutation", "restoreWorks", "input", "workIds"},
		{"Mutation", "purgeWorks", "input", "workIds"},
	} {
		args := func(n int) map[string]any {
			if tc.list == "" {
				return map[string]any{tc.arg: ids(n)}
			}
			return map[string]any{tc.arg: map[string]any{tc.list: ids(n)}}
		}
		one, ok1 := es.Complexity(context.Background(), tc.typ, tc.field, 5, args(1))
		hundred, ok100 := es.Complexity(context.Background(), tc.typ, tc.field, 5, args(100))
		if !ok1 || !ok100 || hundred < one+99*5 {
			t.Errorf("%s.%s: 1 item costs %d (%v), 100 cost %d (%v); want 100 to cost at least 99 × 5 more", tc.typ, tc.field, one, ok1, hundred, ok100)
		}
	}
}

// Mutations that hash a password, decode an image or queue a generation
// cost what that work costs, not one field's worth.
func TestExpensiveMutationsCostTheirWork(t *testing.T) {
	es := costedSchema()
	for field, want := range map[string]int{
		"signUp": hashCost, "signIn": hashCost, "changePassword": hashCost, "resetPassword": hashCost, "changeEmail": hashCost,
		"uploadImage": imageCost, "completeUpload": imageCost,
		"generateImage": generationCost, "editImage": generationCost, "retryGeneration": generationCost,
	} {
		got, ok := es.Complexity(context.Background(), "Mutation", field, 1, map[string]any{"input": map[string]any{}})
		if !ok || got < want {
			t.Errorf("Mutation.%s costs %d (custom %v); want at least %d", field, got, ok, want)
		}
	}
}

// The cost sent with every response of an operation is written once, and
// as encoding/json writes it.
func TestOperationCostAppendsItsJSON(t *testing.T) {
	for _, c := range []*OperationCost{
		{RequestedQueryCost: 3, ActualQueryCost: 3},
		{RequestedQueryCost: 12, ActualQueryCost: 12, ThrottleStatus: &ThrottleStatus{MaximumAvailable: 1000, CurrentlyAvailable: 987.5, RestoreRate: 50}},
	} {
		type plain OperationCost
		want, err := json.Marshal((*plain)(c))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // made, then kept
			got, err := c.AppendJSON([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "x"+string(want) {
				t.Fatalf("AppendJSON = %s, want x%s", got, want)
			}
		}
	}
}

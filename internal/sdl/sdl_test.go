package sdl

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

const base = `
type Query {
  work(id: ID!, version: Int): Work
  works(first: Int = 20): [Work!]!
}
type Work { id: ID! title: String! note: String kind: Kind! }
enum Kind { PHOTO DRAWING }
input WorkInput { title: String! note: String }
type Mutation { save(input: WorkInput!): Work }
union Result = Work | Error
type Error { message: String! }
type Stat { n: Int }
`

func mustParse(t *testing.T, text string) *ast.Schema {
	t.Helper()
	s, err := Parse("test.graphqls", text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return s
}

func breaking(changes []Change) []string {
	var out []string
	for _, c := range changes {
		if c.Breaking {
			out = append(out, c.String())
		}
	}
	return out
}

// Each kind of breaking change is found, at its coordinate.
func TestDiffFindsBreakingChanges(t *testing.T) {
	old := mustParse(t, base)
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"removed field", "title: String! note", "note", "`Work.title` field removed"},
		{"removed type", "type Stat { n: Int }", "", "`Stat` type removed"},
		{"removed enum value", "PHOTO DRAWING", "PHOTO", "`Kind.DRAWING` enum value removed"},
		{"removed argument", "work(id: ID!, version: Int)", "work(id: ID!)", "`Query.work(version:)` argument removed"},
		{"new required argument", "works(first: Int = 20)", "works(first: Int = 20, owner: ID!)", "`Query.works(owner:)` required argument added (ID!)"},
		{"output non-null to nullable", "title: String! note", "title: String note", "`Work.title` changed type from String! to String"},
		{"output type changed", "note: String", "note: Int", "`Work.note` changed type from String to Int"},
		{"output list changed", "works(first: Int = 20): [Work!]!", "works(first: Int = 20): [Work]!", "`Query.works` changed type from [Work!]! to [Work]!"},
		{"input nullable to non-null", "title: String! note: String }\ntype Mutation", "title: String! note: String! }\ntype Mutation", "`WorkInput.note` changed type from String to String!"},
		{"argument nullable to non-null", "version: Int)", "version: Int!)", "`Query.work(version:)` changed type from Int to Int!"},
		{"new required input field", "note: String }\ntype Mutation", "note: String tags: [String!]! }\ntype Mutation", "`WorkInput.tags` required input field added ([String!]!)"},
		{"removed input field", "input WorkInput { title: String! note: String }", "input WorkInput { title: String! }", "`WorkInput.note` input field removed"},
		{"union member removed", "Work | Error", "Work", "`Result` no longer includes Error"},
		{"kind changed", "type Stat { n: Int }", "interface Stat { n: Int }", "`Stat` changed kind from OBJECT to INTERFACE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.from) {
				t.Fatalf("%q is not in the base schema", tc.from)
			}
			changed := mustParse(t, strings.Replace(base, tc.from, tc.to, 1))
			got := breaking(Diff(old, changed))
			if !slices.Contains(got, tc.want) {
				t.Errorf("breaking changes %q, want %q among them", got, tc.want)
			}
		})
	}
}

// Additive changes, and those safe for existing clients, are not breaking.
func TestDiffAcceptsCompatibleChanges(t *testing.T) {
	old := mustParse(t, base)
	for _, tc := range []struct{ name, from, to string }{
		{"new field", "kind: Kind! }", "kind: Kind! size: Int }"},
		{"new type", "type Error {", "type Extra { a: Int }\ntype Error {"},
		{"new enum value", "PHOTO DRAWING", "PHOTO DRAWING VECTOR"},
		{"new optional argument", "works(first: Int = 20)", "works(first: Int = 20, after: String)"},
		{"new required argument with a default", "works(first: Int = 20)", "works(first: Int = 20, order: Int! = 1)"},
		{"output nullable to non-null", "note: String kind", "note: String! kind"},
		{"input non-null to nullable", "input WorkInput { title: String!", "input WorkInput { title: String"},
		{"argument non-null to nullable", "work(id: ID!", "work(id: ID"},
		{"deprecation", "note: String kind", `note: String @deprecated(reason: "Use title.") kind`},
		{"description", "type Work {", "\"A work.\"\ntype Work {"},
		{"union member added", "Work | Error", "Work | Error | Query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := mustParse(t, strings.Replace(base, tc.from, tc.to, 1))
			if got := breaking(Diff(old, changed)); len(got) > 0 {
				t.Errorf("breaking changes %q, want none", got)
			}
		})
	}
	if got := Diff(old, mustParse(t, base)); len(got) > 0 {
		t.Errorf("the same schema differs: %v", got)
	}
}

// A breaking change is accepted once the changelog names its coordinate.
func TestUnlistedBreakingChanges(t *testing.T) {
	old := mustParse(t, base)
	changed := mustParse(t, strings.Replace(base, "title: String! note", "note", 1))
	changes := Diff(old, changed)
	if got := Unlisted(changes, "# Schema changelog\n\n- `Work.titles` renamed\n"); len(got) != 1 || got[0].Coordinate != "Work.title" {
		t.Fatalf("unlisted = %v, want the removal of Work.title", got)
	}
	if got := Unlisted(changes, "# Schema changelog\n\nProse about `Work.title` accepts nothing.\n"); len(got) != 1 {
		t.Fatalf("unlisted = %v, want the removal of Work.title: only list entries accept changes", got)
	}
	if got := Unlisted(changes, "# Schema changelog\n\n- 2026-12-01 `Work.title` removed: use `Work.note`.\n"); len(got) != 0 {
		t.Errorf("unlisted = %v, want none once the changelog names Work.title", got)
	}
}

func TestDeprecatedWithoutReason(t *testing.T) {
	s := mustParse(t, `
type Query {
  a: Int @deprecated(reason: "Use b, which counts in bytes.")
  b: Int @deprecated
  c(x: Int @deprecated(reason: "")): Int
}
input In { f: Int @deprecated(reason: "  ") }
enum E { ONE @deprecated(reason: "Use TWO.") TWO @deprecated }
`)
	got := DeprecatedWithoutReason(s)
	want := []string{"E.TWO", "In.f", "Query.b", "Query.c(x:)"}
	if !slices.Equal(got, want) {
		t.Errorf("DeprecatedWithoutReason = %v, want %v", got, want)
	}
}

// The service's own schema: every @deprecated says why and what instead.
func TestServiceSchemaDeprecationsHaveReasons(t *testing.T) {
	files, err := SourceFiles(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	if got := DeprecatedWithoutReason(s); len(got) > 0 {
		t.Errorf("@deprecated without a reason on %v: say what to use instead, and when it goes", got)
	}
}

// The printed SDL keeps descriptions and deprecations, and reads back as
// the same schema and the same text.
func TestPrintRoundTrips(t *testing.T) {
	s := mustParse(t, `
"The root."
type Query {
  "Old name."
  a: Int @deprecated(reason: "Use b.")
  b(x: Int = 1): Int
}
`)
	printed := Print(s)
	for _, want := range []string{"The root.", "Old name.", `@deprecated(reason: "Use b.")`, "b(x: Int = 1): Int"} {
		if !strings.Contains(printed, want) {
			t.Errorf("printed SDL lacks %q:\n%s", want, printed)
		}
	}
	files, err := SourceFiles(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	service, err := LoadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*ast.Schema{s, service} {
		printed := Print(s)
		again, err := Parse("printed", printed)
		if err != nil {
			t.Fatal(err)
		}
		if Print(again) != printed {
			t.Error("printing the printed schema changes it")
		}
		if d := Diff(s, again); len(d) > 0 {
			t.Errorf("the printed schema differs from its source: %v", d)
		}
	}
}

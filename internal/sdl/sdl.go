// Package sdl prints the published schema and compares two versions of it:
// the changes between them, which of those break existing clients, and
// whether each breaking one is listed in the schema changelog.
package sdl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// Print returns the schema as SDL, with descriptions and directives
// (@deprecated among them), types in name order and fields in schema
// order, without the built-in types and directives.
func Print(s *ast.Schema) string {
	var b bytes.Buffer
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatSchema(s)
	return separateDefinitions(b.String())
}

// separateDefinitions puts a blank line between top-level definitions,
// which the formatter writes back to back, so that the file reads like
// the schema sources; never inside a description.
func separateDefinitions(sdl string) string {
	var out strings.Builder
	inString, prev := false, ""
	for line := range strings.SplitSeq(strings.TrimSuffix(sdl, "\n"), "\n") {
		ended := prev == "}" || strings.HasPrefix(prev, "scalar ") || strings.HasPrefix(prev, "union ") || strings.HasPrefix(prev, "directive ")
		if !inString && ended && line != "" && line[0] != ' ' {
			out.WriteString("\n")
		}
		out.WriteString(line)
		out.WriteString("\n")
		if strings.Count(line, `"""`)%2 == 1 {
			inString = !inString
		}
		prev = line
	}
	return out.String()
}

// SourceFiles are the schema files, relative to the module root, in the
// order gqlgen.yml lists them.
func SourceFiles(root string) ([]string, error) {
	more, err := filepath.Glob(filepath.Join(root, "graph", "schema", "*.graphqls"))
	if err != nil {
		return nil, err
	}
	sort.Strings(more)
	return append([]string{filepath.Join(root, "schema.graphqls")}, more...), nil
}

// LoadFiles parses and validates a schema made of files.
func LoadFiles(files ...string) (*ast.Schema, error) {
	sources := make([]*ast.Source, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sources = append(sources, &ast.Source{Name: f, Input: string(b)})
	}
	s, err := gqlparser.LoadSchema(sources...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Parse parses and validates a schema held in one string.
func Parse(name, text string) (*ast.Schema, error) {
	s, err := gqlparser.LoadSchema(&ast.Source{Name: name, Input: text})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Change is one difference between two versions of the schema, at a
// schema coordinate: `Type`, `Type.field`, `Type.field(arg:)`,
// `Enum.VALUE` or `@directive`.
type Change struct {
	Coordinate string
	Message    string
	// Breaking changes can fail a query, a variable or a response check
	// that worked against the old schema.
	Breaking bool
}

func (c Change) String() string { return "`" + c.Coordinate + "` " + c.Message }

// Diff lists what changed from old to new, in coordinate order.
// Descriptions are not compared.
func Diff(old, new *ast.Schema) []Change {
	d := &differ{}
	for _, name := range sortedKeys(old.Types) {
		ot := old.Types[name]
		if ot.BuiltIn {
			continue
		}
		nt, ok := new.Types[name]
		if !ok {
			d.breaking(name, "type removed")
			continue
		}
		if ot.Kind != nt.Kind {
			d.breaking(name, fmt.Sprintf("changed kind from %s to %s", ot.Kind, nt.Kind))
			continue
		}
		d.definition(ot, nt)
	}
	for _, name := range sortedKeys(new.Types) {
		if _, ok := old.Types[name]; !ok && !new.Types[name].BuiltIn {
			d.additive(name, "type added")
		}
	}
	for _, root := range []struct {
		op       string
		old, new *ast.Definition
	}{{"query", old.Query, new.Query}, {"mutation", old.Mutation, new.Mutation}, {"subscription", old.Subscription, new.Subscription}} {
		if root.old != nil && (root.new == nil || root.new.Name != root.old.Name) {
			d.breaking(root.old.Name, "is no longer the "+root.op+" root type")
		}
	}
	for _, name := range sortedKeys(old.Directives) {
		od := old.Directives[name]
		if od.Position != nil && od.Position.Src != nil && od.Position.Src.BuiltIn {
			continue
		}
		nd, ok := new.Directives[name]
		if !ok {
			d.breaking("@"+name, "directive removed")
			continue
		}
		d.arguments("@"+name, od.Arguments, nd.Arguments)
	}
	sort.SliceStable(d.changes, func(i, j int) bool { return d.changes[i].Coordinate < d.changes[j].Coordinate })
	return d.changes
}

type differ struct{ changes []Change }

func (d *differ) breaking(coord, msg string) {
	d.changes = append(d.changes, Change{Coordinate: coord, Message: msg, Breaking: true})
}

func (d *differ) additive(coord, msg string) {
	d.changes = append(d.changes, Change{Coordinate: coord, Message: msg})
}

func (d *differ) definition(ot, nt *ast.Definition) {
	switch ot.Kind {
	case ast.Object, ast.Interface:
		for _, of := range ot.Fields {
			if strings.HasPrefix(of.Name, "__") {
				continue
			}
			coord := ot.Name + "." + of.Name
			nf := nt.Fields.ForName(of.Name)
			if nf == nil {
				d.breaking(coord, "field removed")
				continue
			}
			if !outputCompatible(of.Type, nf.Type) {
				d.breaking(coord, fmt.Sprintf("changed type from %s to %s", of.Type, nf.Type))
			} else if of.Type.String() != nf.Type.String() {
				d.additive(coord, fmt.Sprintf("changed type from %s to %s", of.Type, nf.Type))
			}
			if deprecated(nf.Directives) && !deprecated(of.Directives) {
				d.additive(coord, "deprecated")
			}
			d.arguments(coord, of.Arguments, nf.Arguments)
		}
		for _, nf := range nt.Fields {
			if ot.Fields.ForName(nf.Name) == nil && !strings.HasPrefix(nf.Name, "__") {
				d.additive(ot.Name+"."+nf.Name, "field added")
			}
		}
		for _, i := range ot.Interfaces {
			if !contains(nt.Interfaces, i) {
				d.breaking(ot.Name, "no longer implements "+i)
			}
		}
		for _, i := range nt.Interfaces {
			if !contains(ot.Interfaces, i) {
				d.additive(ot.Name, "now implements "+i)
			}
		}
	case ast.InputObject:
		for _, of := range ot.Fields {
			coord := ot.Name + "." + of.Name
			nf := nt.Fields.ForName(of.Name)
			if nf == nil {
				d.breaking(coord, "input field removed")
				continue
			}
			d.inputType(coord, of.Type, nf.Type)
		}
		for _, nf := range nt.Fields {
			if ot.Fields.ForName(nf.Name) == nil {
				d.added(ot.Name+"."+nf.Name, "input field", nf.Type, nf.DefaultValue)
			}
		}
	case ast.Enum:
		for _, ov := range ot.EnumValues {
			if nt.EnumValues.ForName(ov.Name) == nil {
				d.breaking(ot.Name+"."+ov.Name, "enum value removed")
			}
		}
		for _, nv := range nt.EnumValues {
			if ot.EnumValues.ForName(nv.Name) == nil {
				// Not breaking by the usual rule, but clients that switch on
				// the enum should handle values they do not know.
				d.additive(ot.Name+"."+nv.Name, "enum value added")
			}
		}
	case ast.Union:
		for _, m := range ot.Types {
			if !contains(nt.Types, m) {
				d.breaking(ot.Name, "no longer includes "+m)
			}
		}
		for _, m := range nt.Types {
			if !contains(ot.Types, m) {
				d.additive(ot.Name, "now includes "+m)
			}
		}
	}
}

// arguments compares the arguments of the field or directive at coord.
func (d *differ) arguments(coord string, old, new ast.ArgumentDefinitionList) {
	argCoord := func(name string) string { return coord + "(" + name + ":)" }
	for _, oa := range old {
		na := new.ForName(oa.Name)
		if na == nil {
			d.breaking(argCoord(oa.Name), "argument removed")
			continue
		}
		d.inputType(argCoord(oa.Name), oa.Type, na.Type)
	}
	for _, na := range new {
		if old.ForName(na.Name) == nil {
			d.added(argCoord(na.Name), "argument", na.Type, na.DefaultValue)
		}
	}
}

// added reports a new argument or input field: breaking when required
// (non-null without a default), since requests without it stop validating.
func (d *differ) added(coord, what string, t *ast.Type, def *ast.Value) {
	if t.NonNull && def == nil {
		d.breaking(coord, "required "+what+" added ("+t.String()+")")
		return
	}
	d.additive(coord, "optional "+what+" added")
}

func (d *differ) inputType(coord string, old, new *ast.Type) {
	switch {
	case !inputCompatible(old, new):
		d.breaking(coord, fmt.Sprintf("changed type from %s to %s", old, new))
	case old.String() != new.String():
		d.additive(coord, fmt.Sprintf("changed type from %s to %s", old, new))
	}
}

// outputCompatible reports whether clients reading a value of type old can
// read one of type new: the same type, or one that is non-null where old
// was nullable.
func outputCompatible(old, new *ast.Type) bool {
	if new.NonNull && !old.NonNull {
		relaxed := *new
		relaxed.NonNull = false
		return outputCompatible(old, &relaxed)
	}
	return sameShape(old, new, outputCompatible)
}

// inputCompatible reports whether values clients send as type old are
// still accepted as type new: the same type, or one that is nullable where
// old was non-null.
func inputCompatible(old, new *ast.Type) bool {
	if old.NonNull && !new.NonNull {
		relaxed := *old
		relaxed.NonNull = false
		return inputCompatible(&relaxed, new)
	}
	return sameShape(old, new, inputCompatible)
}

func sameShape(old, new *ast.Type, elem func(old, new *ast.Type) bool) bool {
	if old.NonNull != new.NonNull || (old.Elem == nil) != (new.Elem == nil) {
		return false
	}
	if old.Elem != nil {
		return elem(old.Elem, new.Elem)
	}
	return old.NamedType == new.NamedType
}

func deprecated(dirs ast.DirectiveList) bool { return dirs.ForName("deprecated") != nil }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Unlisted returns the breaking changes that the changelog does not
// accept: a change is accepted by a list entry (a line starting with "- ")
// that names its coordinate in backticks, such as
// "- 2026-12-01 `Work.title` removed: use `Work.name`". Prose elsewhere
// in the file may mention coordinates without accepting anything.
func Unlisted(changes []Change, changelog string) []Change {
	var out []Change
	for _, c := range changes {
		if c.Breaking && !listed(changelog, c.Coordinate) {
			out = append(out, c)
		}
	}
	return out
}

func listed(changelog, coord string) bool {
	for line := range strings.SplitSeq(changelog, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "- ") && strings.Contains(line, "`"+coord+"`") {
			return true
		}
	}
	return false
}

// DeprecatedWithoutReason returns the coordinates of everything marked
// @deprecated without a reason: a client told only "deprecated" does not
// know what to use instead, or when it goes.
func DeprecatedWithoutReason(s *ast.Schema) []string {
	var out []string
	check := func(coord string, dirs ast.DirectiveList) {
		d := dirs.ForName("deprecated")
		if d == nil {
			return
		}
		reason := d.Arguments.ForName("reason")
		if reason == nil || reason.Value == nil || strings.TrimSpace(reason.Value.Raw) == "" {
			out = append(out, coord)
		}
	}
	for _, name := range sortedKeys(s.Types) {
		t := s.Types[name]
		if t.BuiltIn {
			continue
		}
		for _, f := range t.Fields {
			check(name+"."+f.Name, f.Directives)
			for _, a := range f.Arguments {
				check(name+"."+f.Name+"("+a.Name+":)", a.Directives)
			}
		}
		for _, v := range t.EnumValues {
			check(name+"."+v.Name, v.Directives)
		}
	}
	return out
}

// Command schemacheck keeps the published schema honest: it prints the SDL
// of schema.graphqls and graph/schema/*.graphqls and compares it with the
// committed snapshot, schema/published.graphql. A breaking change (a
// removed type, field, argument or enum value, a type that clients can no
// longer read or send, a new required argument...) fails unless a list
// entry of SCHEMA_CHANGELOG.md names its coordinate; any other difference fails
// until the snapshot is updated. With -update it writes the snapshot,
// refusing the same unlisted breaking changes.
//
//	go run ./cmd/schemacheck            # make schema-check
//	go run ./cmd/schemacheck -update    # make schema-update
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fastimage/api/internal/sdl"
)

const (
	snapshotPath  = "schema/published.graphql"
	changelogPath = "SCHEMA_CHANGELOG.md"
)

func main() {
	update := flag.Bool("update", false, "write "+snapshotPath+" (breaking changes must be in "+changelogPath+" first)")
	root := flag.String("root", ".", "the module's root directory")
	flag.Parse()
	if err := run(*root, *update, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "schemacheck:", err)
		os.Exit(1)
	}
}

func run(root string, update bool, out io.Writer) error {
	files, err := sdl.SourceFiles(root)
	if err != nil {
		return err
	}
	current, err := sdl.LoadFiles(files...)
	if err != nil {
		return fmt.Errorf("the schema does not load: %w", err)
	}
	if bad := sdl.DeprecatedWithoutReason(current); len(bad) > 0 {
		return fmt.Errorf("@deprecated without a reason on %s: give each a reason saying what to use instead", strings.Join(bad, ", "))
	}
	printed := sdl.Print(current)
	snapshotFile := filepath.Join(root, snapshotPath)
	published, err := os.ReadFile(snapshotFile)
	if errors.Is(err, fs.ErrNotExist) {
		if !update {
			return fmt.Errorf("%s does not exist; create it with `make schema-update`", snapshotPath)
		}
		return write(snapshotFile, printed, out, nil)
	}
	if err != nil {
		return err
	}
	old, err := sdl.Parse(snapshotPath, string(published))
	if err != nil {
		return fmt.Errorf("%s does not load: %w", snapshotPath, err)
	}
	changelog, err := os.ReadFile(filepath.Join(root, changelogPath))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	changes := sdl.Diff(old, current)
	if unlisted := sdl.Unlisted(changes, string(changelog)); len(unlisted) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%d breaking change(s) against %s, not in %s:\n", len(unlisted), snapshotPath, changelogPath)
		for _, c := range unlisted {
			fmt.Fprintf(&b, "  %s\n", c)
		}
		fmt.Fprintf(&b, "Partners' clients break on these. Keep the old field (mark it @deprecated(reason: ...)) or, if the break is meant, add a list entry (a line starting with \"- \") naming each coordinate in backticks to %s, then run `make schema-update`.", changelogPath)
		return errors.New(b.String())
	}
	if update {
		if string(published) == printed {
			fmt.Fprintf(out, "%s is up to date\n", snapshotPath)
			return nil
		}
		return write(snapshotFile, printed, out, changes)
	}
	if string(published) != printed {
		var b strings.Builder
		fmt.Fprintf(&b, "%s is out of date", snapshotPath)
		if len(changes) > 0 {
			b.WriteString("; changes:\n")
			for _, c := range changes {
				mark := ""
				if c.Breaking {
					mark = " (breaking, in " + changelogPath + ")"
				}
				fmt.Fprintf(&b, "  %s%s\n", c, mark)
			}
		} else {
			b.WriteString(" (descriptions or order changed)\n")
		}
		b.WriteString("Run `make schema-update` and commit the result.")
		return errors.New(b.String())
	}
	fmt.Fprintf(out, "schema matches %s\n", snapshotPath)
	return nil
}

func write(path, printed string, out io.Writer, changes []sdl.Change) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(printed), 0o644); err != nil {
		return err
	}
	for _, c := range changes {
		fmt.Fprintf(out, "  %s\n", c)
	}
	fmt.Fprintf(out, "wrote %s\n", snapshotPath)
	return nil
}

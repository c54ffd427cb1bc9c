package legal

import (
	"embed"
	"strings"
	"time"
)

// The texts of the built-in versions (see BuiltIn): plain text, one
// paragraph a line, "- " starting a list item and "## " a heading. The
// site's host stands in for {{site}}.
//
//go:embed text/privacy_policy.txt text/terms.txt
var texts embed.FS

// BuiltInText is the published text of one built-in version.
type BuiltInText struct {
	Kind        Kind
	Version     string
	EffectiveAt time.Time
	// Blocks are the text's paragraphs, headings and list items, in order.
	Blocks []Block
}

// Block is one paragraph, heading or list of a text.
type Block struct {
	// Text is a paragraph's or a heading's.
	Text    string
	Heading bool
	// Items are a list's; a list has no Text.
	Items []string
}

// Text returns the built-in text of kind, with site (the public URL's host)
// in place of {{site}}. It is the text of the version BuiltIn publishes: a
// deployment whose LEGAL_DOCUMENTS_FILE names other versions publishes
// their texts at the URLs it gives.
func Text(kind Kind, site string) (BuiltInText, bool) {
	raw, err := texts.ReadFile("text/" + string(kind) + ".txt")
	if err != nil {
		return BuiltInText{}, false
	}
	doc := BuiltIn(nil)[0]
	for _, d := range BuiltIn(nil) {
		if d.Kind == kind {
			doc = d
		}
	}
	out := BuiltInText{Kind: kind, Version: doc.Version, EffectiveAt: doc.EffectiveAt}
	for _, line := range strings.Split(strings.ReplaceAll(string(raw), "{{site}}", site), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "## "):
			out.Blocks = append(out.Blocks, Block{Text: strings.TrimPrefix(line, "## "), Heading: true})
		case strings.HasPrefix(line, "- "):
			item := strings.TrimPrefix(line, "- ")
			if n := len(out.Blocks); n > 0 && out.Blocks[n-1].Items != nil {
				out.Blocks[n-1].Items = append(out.Blocks[n-1].Items, item)
			} else {
				out.Blocks = append(out.Blocks, Block{Items: []string{item}})
			}
		default:
			out.Blocks = append(out.Blocks, Block{Text: line})
		}
	}
	return out, true
}

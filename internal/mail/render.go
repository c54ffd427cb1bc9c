package mail

import (
	"html/template"
	"io"
	"regexp"
	"strings"
)

// RenderOutboxHTML writes an HTML page listing msgs, for a development-only
// page. Every value is escaped; web links in the text bodies are made
// clickable, and each HTML body is shown in a sandboxed frame where its
// scripts cannot run.
func RenderOutboxHTML(w io.Writer, msgs []Stored) error {
	views := make([]outboxView, len(msgs))
	for i, m := range msgs {
		t := m.CreatedAt.UTC()
		views[i] = outboxView{
			Kind:     m.Kind,
			To:       m.To,
			Subject:  m.Subject,
			Time:     t.Format("2006-01-02 15:04:05 UTC"),
			DateTime: t.Format("2006-01-02T15:04:05.000Z"),
			Text:     linkify(m.Text),
			HTML:     m.HTML,
		}
	}
	return outboxPage.Execute(w, views)
}

type outboxView struct {
	Kind, To, Subject string
	Time, DateTime    string
	Text              []textPart
	HTML              string
}

// textPart is a piece of a text body: a link, or plain text.
type textPart struct {
	Text string
	Link bool
}

// linkPattern finds web links in text mail. Only http(s) links are made
// clickable; html/template would refuse others such as javascript: anyway.
var linkPattern = regexp.MustCompile(`https?://[^\s<>"'` + "`" + `]+`)

// linkify splits s into plain text and links. Punctuation that ends a
// sentence is left out of the link before it.
func linkify(s string) []textPart {
	var parts []textPart
	rest := 0
	for _, loc := range linkPattern.FindAllStringIndex(s, -1) {
		start, end := loc[0], loc[1]
		end = start + len(strings.TrimRight(s[start:end], ".,;:!?)]}"))
		if end-start <= len("https://") {
			continue
		}
		if start > rest {
			parts = append(parts, textPart{Text: s[rest:start]})
		}
		parts = append(parts, textPart{Text: s[start:end], Link: true})
		rest = end
	}
	if rest < len(s) {
		parts = append(parts, textPart{Text: s[rest:]})
	}
	return parts
}

var outboxPage = template.Must(template.New("outbox").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<title>Mail outbox</title>
<link rel="icon" href="data:,">
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
article { border: 1px solid #ccc; border-radius: 6px; margin: 1rem 0; padding: 0 1rem 1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { color: #666; }
dd { margin: 0; }
pre { background: #f6f6f6; padding: .75rem; white-space: pre-wrap; overflow-wrap: anywhere; }
iframe { border: 1px solid #ddd; height: 30rem; width: 100%; }
</style>
</head>
<body>
<h1>Mail outbox</h1>
<p>Development only: the mail the service would have sent, newest first.</p>
{{range .}}<article>
<h2>{{.Subject}}</h2>
<dl>
<dt>Kind</dt><dd>{{.Kind}}</dd>
<dt>To</dt><dd>{{.To}}</dd>
<dt>Time</dt><dd><time datetime="{{.DateTime}}">{{.Time}}</time></dd>
</dl>
<pre>{{range .Text}}{{if .Link}}<a href="{{.Text}}" rel="noreferrer">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}</pre>
{{if .HTML}}<details>
<summary>HTML version</summary>
<iframe sandbox referrerpolicy="no-referrer" title="HTML version" srcdoc="{{.HTML}}"></iframe>
</details>
{{end}}</article>
{{else}}<p>No mail yet.</p>
{{end}}</body>
</html>
`))

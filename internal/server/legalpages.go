package server

import (
	"html/template"
	"net/http"
	"net/url"

	"github.com/fastimage/api/internal/legal"
	"github.com/fastimage/api/internal/processor"
)

// sitePages registers the site's pages outside the editor: the privacy
// policy and the terms at /privacy and /terms, where the built-in legal
// documents say they are published, and /account and /buy, the return
// paths of Stripe's Checkout and billing portal (a return URL may not carry
// a fragment, and the editor's screens are fragments), which lead back into
// the editor.
func (s *Server) sitePages(handle func(pattern, route string, h http.Handler)) {
	handle("GET /privacy", "/privacy", s.legalPage(legal.PrivacyPolicy))
	handle("GET /terms", "/terms", s.legalPage(legal.Terms))
	handle("GET /account", "/account", toScreen("account"))
	handle("GET /buy", "/buy", toScreen("buy"))
}

// maxScreenQuery bounds the query a return path carries on to the screen
// (Stripe adds ?session_id=…); a longer one is dropped.
const maxScreenQuery = 1000

// toScreen redirects to the editor's screen #/<screen>, keeping the query
// (e.g. /buy?checkout=success&session_id=… → /#/buy?checkout=success&…).
// The target is always this site's root, so it redirects nowhere else.
func toScreen(screen string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := "/#/" + screen
		if q := r.URL.RawQuery; q != "" && len(q) <= maxScreenQuery {
			if v, err := url.ParseQuery(q); err == nil {
				target += "?" + v.Encode()
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}

// legalPageData is what a legal page shows.
type legalPageData struct {
	Title string
	// Styles is the page's stylesheet, one of the editor's files.
	Styles string
	Text   legal.BuiltInText
	Other  struct{ Title, Path string }
	// Processors and Privacy are shown under the privacy policy: who gets
	// data as this server is configured now, and where to use one's rights.
	Privacy    bool
	Processors []*processor.Processor
	Support    string
}

var legalTitles = map[legal.Kind]struct{ Title, Path string }{
	legal.PrivacyPolicy: {"Privacy Policy", "/privacy"},
	legal.Terms:         {"Terms of Service", "/terms"},
}

// categoryNames are the privacy policy's names of the data categories.
var categoryNames = map[processor.Category]string{
	processor.Account:  "account information",
	processor.Security: "login and security data",
	processor.Content:  "content (images, prompts, outputs)",
	processor.Usage:    "usage data",
	processor.Payment:  "payment records",
	processor.Support:  "support messages",
}

var legalTemplate = template.Must(template.New("legal").Funcs(template.FuncMap{
	"category": func(c processor.Category) string {
		if n, ok := categoryNames[c]; ok {
			return n
		}
		return string(c)
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}} · FastImage</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{{.Styles}}">
</head><body>
<header><a class="brand" href="/">FastImage</a><nav aria-label="Legal"><a href="{{.Other.Path}}">{{.Other.Title}}</a></nav></header>
<main id="legal-text" data-kind="{{.Text.Kind}}" data-version="{{.Text.Version}}">
<h1>{{.Title}}</h1>
<p class="effective">Effective <time datetime="{{.Text.EffectiveAt.Format "2006-01-02"}}">{{.Text.EffectiveAt.Format "2 January 2006"}}</time> · version {{.Text.Version}}</p>
{{range .Text.Blocks}}{{if .Heading}}<h2>{{.Text}}</h2>
{{else if .Items}}<ul>{{range .Items}}<li>{{.}}</li>{{end}}</ul>
{{else}}<p>{{.Text}}</p>
{{end}}{{end}}
{{if .Privacy}}<section id="on-this-server" aria-labelledby="on-this-server-title">
<h2 id="on-this-server-title">On this server, now</h2>
<p>The third parties that receive personal data as this server is configured right now:</p>
<ul id="processors">{{range .Processors}}<li><strong>{{.Name}}</strong>{{if .Host}} ({{.Host}}){{end}}: {{.Purpose}} Data: {{range $i, $c := .Categories}}{{if $i}}, {{end}}{{category $c}}{{end}}.</li>
{{else}}<li>None: your data stays with us.</li>{{end}}</ul>
<p>Use your rights yourself, in your <a href="/account">account’s Privacy section</a>: download a copy of your data, ask for a correction, object to processing, or delete your account. We answer requests within one month.</p>
</section>{{end}}
{{if .Support}}<p class="contact">Contact: <a href="mailto:{{.Support}}">{{.Support}}</a></p>{{end}}
</main>
<footer><a href="/">Back to FastImage</a></footer>
</body></html>`))

// legalPageCSP lets the page load its stylesheet and nothing else.
const legalPageCSP = "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// legalPage serves the built-in text of kind.
func (s *Server) legalPage(kind legal.Kind) http.Handler {
	site := ""
	if s.cfg.PublicURL != nil {
		site = s.cfg.PublicURL.Host
	}
	text, ok := legal.Text(kind, site)
	if !ok {
		panic("legal: no built-in text of " + string(kind))
	}
	data := legalPageData{Title: legalTitles[kind].Title, Styles: webStaticPrefix + "legal.css", Text: text, Support: s.cfg.Privacy.SupportEmail}
	for k, t := range legalTitles {
		if k != kind {
			data.Other = t
		}
	}
	if kind == legal.PrivacyPolicy {
		data.Privacy = true
		data.Processors = processor.List(s.cfg)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", legalPageCSP)
		if err := legalTemplate.Execute(w, data); err != nil {
			s.log.ErrorContext(r.Context(), "render legal page", "kind", kind, "err", err)
		}
	})
}

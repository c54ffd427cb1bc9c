package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/mail"
)

// The pages emailed links open. Opening one consumes nothing (mail scanners
// open links too): the page shows a button, and only the mutation it sends
// uses the token.
type linkPageData struct {
	Title, Intro, Button, Mutation, Done string
	NeedsPassword                        bool
	Nonce                                string
}

var (
	verifyEmailPage = linkPageData{
		Title: "Confirm your email", Intro: "Confirm that this email address is yours.",
		Button: "Confirm my email", Mutation: "verifyEmail", Done: "Your email is confirmed. You can close this page and start creating.",
	}
	resetPasswordPage = linkPageData{
		Title: "Choose a new password", Intro: "Choose a new password of at least 8 characters. Every session will be signed out.",
		Button: "Set my new password", Mutation: "resetPassword", NeedsPassword: true, Done: "Your password is changed. Sign in with it.",
	}
	confirmEmailPage = linkPageData{
		Title: "Confirm your new email", Intro: "Confirm that you want to use this address for your FastImage account.",
		Button: "Confirm my new email", Mutation: "confirmEmailChange", Done: "Your email address is changed.",
	}
)

var linkPageTemplate = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}} · FastImage</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}button{font:inherit;padding:.5rem 1rem}input{font:inherit;width:100%;padding:.4rem;margin:.5rem 0}#msg{margin-top:1rem}</style>
</head><body>
<h1>{{.Title}}</h1><p>{{.Intro}}</p>
<form id="f">{{if .NeedsPassword}}<label>New password<input id="pw" type="password" autocomplete="new-password" minlength="8" maxlength="128" required></label>{{end}}
<button type="submit">{{.Button}}</button></form>
<p id="msg" role="status"></p>
<script nonce="{{.Nonce}}">
const token = new URLSearchParams(location.search).get("token") || "";
document.getElementById("f").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = {token};
  {{if .NeedsPassword}}input.newPassword = document.getElementById("pw").value;{{end}}
  const res = await fetch("/graphql", {method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/graphql-response+json"},
    body: JSON.stringify({query: "mutation($input: {{.InputType}}!) { {{.Mutation}}(input: $input) { __typename } }", variables: {input}})});
  const body = await res.json();
  document.getElementById("msg").textContent = body.errors ? body.errors[0].message : {{.Done}};
});
</script></body></html>`))

// InputType is the GraphQL input type of the page's mutation.
func (d linkPageData) InputType() string {
	return string(d.Mutation[0]-'a'+'A') + d.Mutation[1:] + "Input"
}

func linkPage(page linkPageData) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		data := page
		data.Nonce = base64.StdEncoding.EncodeToString(b[:])
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		// The token is in the URL: never send it on as a Referer.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; script-src 'nonce-"+data.Nonce+"'")
		_ = linkPageTemplate.Execute(w, data)
	})
}

// devOutbox lists the mail the local outbox holds; it exists only in
// development, where no mail leaves the machine.
func (s *Server) devOutbox(w http.ResponseWriter, r *http.Request) {
	msgs, err := s.outbox.List(r.Context(), 100)
	if err != nil {
		s.log.ErrorContext(r.Context(), "list outbox", "err", err)
		http.Error(w, "could not read the outbox", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := mail.RenderOutboxHTML(w, msgs); err != nil {
		s.log.ErrorContext(r.Context(), "render outbox", "err", err)
	}
}

// devOutboxMessage is one message of /dev/outbox.json.
type devOutboxMessage struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"createdAt"`
}

// devOutboxJSON is /dev/outbox for programs (the load tool, scripts that
// sign up through the emailed link): the newest messages, newest first,
// only those to the address `to` when it is given, at most `limit` (1 to
// mail.MaxListLimit, default mail.DefaultListLimit). Like the page, it
// exists only in development.
func (s *Server) devOutboxJSON(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := mail.DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > mail.MaxListLimit {
			apperr.WriteHTTP(w, http.StatusBadRequest, apperr.Validation, "limit must be a whole number from 1 to "+strconv.Itoa(mail.MaxListLimit)+".")
			return
		}
		limit = n
	}
	var (
		msgs []mail.Stored
		err  error
	)
	if to := q.Get("to"); to != "" {
		msgs, err = s.outbox.ListTo(r.Context(), to, limit)
	} else {
		msgs, err = s.outbox.List(r.Context(), limit)
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "list outbox", "err", err)
		apperr.WriteHTTP(w, http.StatusInternalServerError, apperr.Internal, "Could not read the outbox.")
		return
	}
	out := struct {
		Messages []devOutboxMessage `json:"messages"`
	}{Messages: make([]devOutboxMessage, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = devOutboxMessage{ID: m.ID, Kind: m.Kind, To: m.To, Subject: m.Subject, Text: m.Text, CreatedAt: m.CreatedAt.UTC()}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

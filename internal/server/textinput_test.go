package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// Text Postgres cannot store (a NUL character, invalid UTF-8) is refused
// with VALIDATION naming the input, in variables and written inline, for
// every kind of text a client sends; nothing reaches SQL, nothing is logged
// as an error.
func TestTextWithNULIsValidation(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "nul@example.com")
	w := me.mustUpload("a.png", imagingtest.PNG(20, 20), "a title")
	const nul = "bad\x00text"
	tests := []struct {
		name, query string
		vars        map[string]any
		wantField   string
	}{
		{"prompt", `mutation($p: String!) { generateImage(input: {prompt: $p}) { generation { id } } }`, map[string]any{"p": nul}, "input.prompt"},
		{"prompt, estimated", `query($p: String!) { estimateGeneration(input: {prompt: $p}) { totalCredits } }`, map[string]any{"p": nul}, "input.prompt"},
		{"idempotency key", `mutation($k: String) { generateImage(input: {prompt: "a cat", idempotencyKey: $k}) { generation { id } } }`, map[string]any{"k": nul}, "input.idempotencyKey"},
		{"title", `mutation($id: ID!, $t: String!) { renameWork(input: {workId: $id, title: $t}) { work { id } } }`, map[string]any{"id": w.ID, "t": nul}, "input.title"},
		{"title, inline", `mutation($id: ID!) { renameWork(input: {workId: $id, title: "bad\u0000text"}) { work { id } } }`, map[string]any{"id": w.ID}, "input.title"},
		{"filename", `mutation($f: String!) { createUpload(input: {filename: $f, contentType: "image/png", bytes: 100}) { uploadId } }`, map[string]any{"f": nul}, "input.filename"},
		{"search", `query($q: String) { viewer { works(filter: {query: $q}) { totalCount } } }`, map[string]any{"q": nul}, "filter.query"},
		{"search, inline", `{ viewer { works(filter: {query: "\u0000"}) { totalCount } } }`, nil, "filter.query"},
		{"cursor", `query($a: String) { viewer { works(after: $a) { totalCount } } }`, map[string]any{"a": nul}, "after"},
		{"id", `query($id: ID!) { work(id: $id) { id } }`, map[string]any{"id": nul}, "id"},
		{"profile name", `mutation($n: String!) { updateProfile(input: {name: $n}) { user { id } } }`, map[string]any{"n": nul}, "input.name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := *me
			c.t = t
			e := c.fails("VALIDATION", tc.query, tc.vars)
			if got := e.Extensions["field"]; got != tc.wantField {
				t.Errorf("extensions.field = %v, want %s", got, tc.wantField)
			}
			if !strings.Contains(e.Message, tc.wantField) {
				t.Errorf("message %q does not name %s", e.Message, tc.wantField)
			}
		})
	}
	t.Run("upload title", func(t *testing.T) {
		c := *me
		c.t = t
		out := c.upload("b.png", imagingtest.PNG(20, 20), nul)
		if out.code() != "VALIDATION" {
			t.Fatalf("got %q (%+v), want VALIDATION", out.code(), out.Errors)
		}
	})
	t.Run("invalid UTF-8, inline over GET", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.URL+"/graphql?query="+url.QueryEscape("{ viewer { works(filter: {query: \"\xff\xfe\"}) { totalCount } } }"), nil)
		req.Header.Set("Authorization", "Bearer "+me.token)
		_, out := do(t, req)
		if out.code() != "VALIDATION" {
			t.Fatalf("got %q (%+v), want VALIDATION", out.code(), out.Errors)
		}
	})
	t.Run("sign-up name, anonymous", func(t *testing.T) {
		s.client(t).fails("VALIDATION", `mutation($n: String!) { signUp(input: {email: "x@example.com", name: $n, password: "correct horse battery staple"}) { message } }`, map[string]any{"n": nul})
	})
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("logged an error: %s", line)
		}
	}
}

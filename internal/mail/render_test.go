package mail_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/mail"
)

func TestRenderOutboxHTML(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	msgs := []mail.Stored{{
		ID: "0190f5c2-0000-7000-8000-000000000001",
		Message: mail.Message{
			Kind:    "verify_email",
			To:      "ada@example.com",
			Subject: `<script>alert("subject")</script>`,
			Text: "Open https://fastimage.example/verify?token=a&b=1. Then <b>enjoy</b>.\n" +
				"Not a link: javascript:alert(1)",
			HTML: `<p>Hi</p><script>alert("html")</script>`,
		},
		CreatedAt: at,
	}}
	var b strings.Builder
	if err := mail.RenderOutboxHTML(&b, msgs); err != nil {
		t.Fatalf("RenderOutboxHTML: %v", err)
	}
	page := b.String()

	for _, tc := range []struct {
		name, want string
		present    bool
	}{
		{"subject escaped", "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;", true},
		{"no raw script", "<script>", false},
		{"text markup escaped", "&lt;b&gt;enjoy&lt;/b&gt;", true},
		{"link clickable, full stop left out", `<a href="https://fastimage.example/verify?token=a&amp;b=1" rel="noreferrer">https://fastimage.example/verify?token=a&amp;b=1</a>. Then`, true},
		{"javascript not linked", `href="javascript`, false},
		{"kind shown", "verify_email", true},
		{"recipient shown", "ada@example.com", true},
		{"time shown", "2026-11-27 10:30:00 UTC", true},
		{"HTML body sandboxed and escaped", `sandbox referrerpolicy="no-referrer" title="HTML version" srcdoc="&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Contains(page, tc.want); got != tc.present {
				t.Errorf("page contains %q: got %v, want %v\n%s", tc.want, got, tc.present, page)
			}
		})
	}
}

func TestRenderOutboxHTMLEmpty(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := mail.RenderOutboxHTML(&b, nil); err != nil {
		t.Fatalf("RenderOutboxHTML: %v", err)
	}
	if !strings.Contains(b.String(), "No mail yet.") {
		t.Errorf("got %q, want the empty notice", b.String())
	}
}

package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// maxSubjectRunes keeps the Subject header well under the 998-byte line
// limit of RFC 5322, even once RFC 2047 encoding has grown it.
const maxSubjectRunes = 200

// Message is one email to one recipient, with a plain-text body and an
// optional HTML body that mail clients show instead when they can.
type Message struct {
	// Kind labels what the message is for, such as "verify_email" or
	// "password_reset"; it is kept in the outbox, never sent.
	Kind string
	// To is one bare address such as "ada@example.com", without a display
	// name.
	To      string
	Subject string
	Text    string
	HTML    string
}

// validate reports why m must not be sent, wrapping ErrInvalidMessage.
func (m Message) validate() error {
	switch {
	case m.Kind == "" || hasControl(m.Kind):
		return fmt.Errorf("%w: kind %q is empty or has control characters", ErrInvalidMessage, m.Kind)
	case hasControl(m.To):
		return fmt.Errorf("%w: recipient has control characters", ErrInvalidMessage)
	case hasControl(m.Subject):
		return fmt.Errorf("%w: subject has control characters", ErrInvalidMessage)
	case strings.TrimSpace(m.Subject) == "":
		return fmt.Errorf("%w: subject is empty", ErrInvalidMessage)
	case utf8.RuneCountInString(m.Subject) > maxSubjectRunes:
		return fmt.Errorf("%w: subject is longer than %d characters", ErrInvalidMessage, maxSubjectRunes)
	case !utf8.ValidString(m.Subject) || !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidMessage)
	case strings.TrimSpace(m.Text) == "":
		return fmt.Errorf("%w: text body is empty", ErrInvalidMessage)
	}
	// A display name or a list would put more than the intended recipient in
	// the To header or the envelope.
	if a, err := netmail.ParseAddress(m.To); err != nil || a.Name != "" || a.Address != m.To {
		return fmt.Errorf("%w: recipient %q is not one plain address", ErrInvalidMessage, m.To)
	}
	return nil
}

// hasControl reports whether s holds a control character. CR and LF are the
// ones that matter: in a header they start a header of the caller's choosing.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// encode returns m as an RFC 5322 message from the given sender, with CRLF
// line endings: multipart/alternative when it has an HTML body, both parts
// UTF-8 and quoted-printable, so that every line stays short and 7-bit.
func (m Message) encode(from netmail.Address, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	h := func(name, value string) { buf.WriteString(fold(name, value) + "\r\n") }
	h("From", from.String())
	h("To", (&netmail.Address{Address: m.To}).String())
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", messageID(from.Address))
	h("MIME-Version", "1.0")
	// Asks mail servers and clients not to send vacation replies and the like
	// to an address nobody reads (RFC 3834).
	h("Auto-Submitted", "auto-generated")

	if m.HTML == "" {
		h("Content-Type", "text/plain; charset=utf-8")
		h("Content-Transfer-Encoding", "quoted-printable")
		buf.WriteString("\r\n")
		if err := writeQP(&buf, m.Text); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}

	mw := multipart.NewWriter(&buf)
	h("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	buf.WriteString("\r\n")
	// Clients show the last part they understand, so the richer one goes last
	// (RFC 2046, 5.1.4).
	for _, p := range []struct{ typ, body string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		if err := writeQP(w, p.body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fold returns the header line "name: value", folded at spaces so that its
// lines stay within the 78 characters RFC 5322 recommends where it can.
// Unfolding restores the value, so it works on any header whose value may
// contain folding white space: encoded words, addresses, parameters.
func fold(name, value string) string {
	const limit = 78
	var b strings.Builder
	b.WriteString(name + ":")
	n := b.Len()
	for _, w := range strings.Split(value, " ") {
		if n+1+len(w) > limit && n > 1 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" " + w)
		n += 1 + len(w)
	}
	return b.String()
}

func writeQP(w io.Writer, s string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(s)); err != nil {
		return err
	}
	return qp.Close()
}

// messageID returns a new globally unique Message-ID in the sender's domain.
func messageID(fromAddress string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	domain := fromAddress[strings.LastIndexByte(fromAddress, '@')+1:]
	return "<" + hex.EncodeToString(b) + "@" + domain + ">"
}

package mail

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
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
	To string
	// ReplyTo, when set, is one bare address replies go to instead of the
	// sender, such as the user who wrote to support.
	ReplyTo string
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
	case hasControl(m.ReplyTo):
		return fmt.Errorf("%w: reply-to address has control characters", ErrInvalidMessage)
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
	if m.ReplyTo != "" {
		if a, err := netmail.ParseAddress(m.ReplyTo); err != nil || a.Name != "" || a.Address != m.ReplyTo {
			return fmt.Errorf("%w: reply-to %q is not one plain address", ErrInvalidMessage, m.ReplyTo)
		}
	}
	return nil
}

// hasControl reports whether s holds a control character. CR and LF are the
// ones that matter: in a header they start a header of the caller's choosing.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// msg returns m as a go-mail message from the given sender, dated now:
// multipart/alternative when it has an HTML body, both parts UTF-8 and
// quoted-printable, so that every line stays short and 7-bit.
func (m Message) msg(from netmail.Address, now time.Time) *gomail.Msg {
	// Without WithNoDefaultUserAgent every mail would name the library and
	// its version.
	g := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP),
		gomail.WithNoDefaultUserAgent())
	g.FromMailAddress(&from)
	g.ToMailAddress(&netmail.Address{Address: m.To})
	if m.ReplyTo != "" {
		g.ReplyToMailAddress(&netmail.Address{Address: m.ReplyTo})
	}
	g.Subject(m.Subject)
	g.SetDateWithValue(now)
	g.SetMessageIDWithValue(messageID(from.Address))
	// Asks mail servers and clients not to send vacation replies and the like
	// to an address nobody reads (RFC 3834).
	g.SetGenHeader("Auto-Submitted", "auto-generated")
	g.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		// Clients show the last part they understand, so the richer one goes
		// last (RFC 2046, 5.1.4).
		g.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return g
}

// messageID returns a new globally unique Message-ID in the sender's domain,
// without its angle brackets. go-mail's own would name this machine instead.
func messageID(fromAddress string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	domain := fromAddress[strings.LastIndexByte(fromAddress, '@')+1:]
	return hex.EncodeToString(b) + "@" + domain
}

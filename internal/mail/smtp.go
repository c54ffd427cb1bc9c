package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// TLSMode says how an SMTP connection is protected.
type TLSMode string

// The TLS modes. The zero value means TLSStartTLS.
const (
	// TLSStartTLS connects in plain text and upgrades with STARTTLS, refusing
	// servers that do not offer it (submission, port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (submissions, port 465).
	TLSImplicit TLSMode = "tls"
	// TLSNone sends everything in plain text. It is for a local test server
	// only, and allows no credentials.
	TLSNone TLSMode = "none"
)

// DefaultSMTPTimeout bounds each stage of a submission when
// SMTPConfig.Timeout is zero; see SMTP.Send.
const DefaultSMTPTimeout = 10 * time.Second

// SMTPConfig describes an SMTP submission server and the sender. Its String
// and LogValue methods leave the password out, so it may be logged.
type SMTPConfig struct {
	Host string
	// Port defaults to 587 for TLSStartTLS, 465 for TLSImplicit and 25 for
	// TLSNone.
	Port int
	// Username, when set, makes the client authenticate with AUTH PLAIN,
	// which it only does over TLS.
	Username string
	Password string
	// From is the sender's address, used in the envelope and the From header;
	// FromName is its optional display name.
	From     string
	FromName string
	TLS      TLSMode
	// Timeout bounds each stage of a submission (see SMTP.Send);
	// DefaultSMTPTimeout when zero. A deadline on the context passed to Send
	// also applies.
	Timeout time.Duration
	// TLSConfig, when set, is used for the TLS connection, e.g. to trust a
	// private certificate authority. Its ServerName defaults to Host.
	TLSConfig *tls.Config
}

// String describes c without its password.
func (c SMTPConfig) String() string {
	user := ""
	if c.Username != "" {
		user = c.Username + ":xxxxx@"
	}
	return fmt.Sprintf("smtp %s%s tls=%s from=%s", user, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), c.tlsMode(), c.From)
}

// GoString describes c without its password, for %#v.
func (c SMTPConfig) GoString() string { return c.String() }

// LogValue describes c for log/slog without its password.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.String("from", c.From),
		slog.String("tls", string(c.tlsMode())),
		slog.Duration("timeout", c.Timeout),
	)
}

func (c SMTPConfig) tlsMode() TLSMode {
	if c.TLS == "" {
		return TLSStartTLS
	}
	return c.TLS
}

// withDefaults returns c with its defaults filled in, or why it is unusable.
func (c SMTPConfig) withDefaults() (SMTPConfig, error) {
	c.TLS = c.tlsMode()
	if c.Port == 0 {
		switch c.TLS {
		case TLSImplicit:
			c.Port = 465
		case TLSNone:
			c.Port = 25
		default:
			c.Port = 587
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultSMTPTimeout
	}
	switch {
	case c.Host == "" || hasControl(c.Host) || strings.ContainsAny(c.Host, " /"):
		return c, errors.New("SMTP host is missing or malformed")
	case c.Port < 1 || c.Port > 65535:
		return c, fmt.Errorf("SMTP port %d is out of range", c.Port)
	case c.TLS != TLSStartTLS && c.TLS != TLSImplicit && c.TLS != TLSNone:
		return c, fmt.Errorf("SMTP TLS mode %q is not starttls, tls or none", c.TLS)
	case c.Username != "" && c.TLS == TLSNone:
		return c, errors.New("SMTP credentials are only sent over TLS; use tls mode starttls or tls")
	case hasControl(c.Username) || hasControl(c.Password):
		return c, errors.New("SMTP username or password has control characters")
	case c.Timeout < 0:
		return c, errors.New("SMTP timeout is negative")
	case hasControl(c.From) || hasControl(c.FromName):
		return c, errors.New("SMTP sender has control characters")
	}
	if a, err := netmail.ParseAddress(c.From); err != nil || a.Name != "" || a.Address != c.From {
		return c, fmt.Errorf("SMTP sender %q is not one plain address", c.From)
	}
	return c, nil
}

// SMTP is a Mailer that submits each message to an SMTP server on its own
// connection, through go-mail.
type SMTP struct {
	cfg  SMTPConfig
	addr string
	from netmail.Address
}

// NewSMTP returns an SMTP mailer for cfg, or an error if cfg is incomplete or
// malformed. It does not connect.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &SMTP{
		cfg:  cfg,
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from: netmail.Address{Name: cfg.FromName, Address: cfg.From},
	}
	// go-mail checks its options only when a client is made; make one now
	// so that a bad option fails here, not at the first Send.
	if _, err := s.client(nil); err != nil {
		return nil, fmt.Errorf("SMTP client: %w", err)
	}
	return s, nil
}

// Send submits m. Connecting, the server's greeting, the opening (EHLO,
// STARTTLS, AUTH) and the transaction (MAIL to QUIT) must each finish within
// the configured timeout, and all of it before ctx is done. An error wraps
// ErrInvalidMessage when m is refused before connecting,
// ErrStartTLSNotOffered when the server cannot upgrade to TLS, the context's
// error when ctx ended, the network error when the connection failed, the
// server's reply (a *textproto.Error) when it refused the opening, and a
// *gomail.SendError, which has the reply's code, when it refused the message.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	if err := s.send(ctx, m.msg(s.from, time.Now())); err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return fmt.Errorf("send %s mail via %s: %w", m.Kind, s.addr, err)
	}
	return nil
}

// ctxErr returns ctx's error, also when its deadline has passed but its
// timer has not fired yet: the connection's deadline, set to the same
// instant, may notice first.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func (s *SMTP) send(ctx context.Context, msg *gomail.Msg) error {
	var conn *ctxConn
	defer func() {
		// go-mail leaves the connection open when the opening fails.
		if conn != nil {
			_ = conn.Close()
		}
	}()
	c, err := s.client(func(dialCtx context.Context, _, _ string) (net.Conn, error) {
		// go-mail's address would be "::1:25" for an IPv6 host.
		raw, err := (&net.Dialer{}).DialContext(dialCtx, "tcp", s.addr)
		if err != nil {
			return nil, err
		}
		// Bound to ctx, not dialCtx: go-mail cancels dialCtx once connected.
		conn = bindConn(ctx, raw)
		if s.cfg.TLS != TLSImplicit {
			return conn, nil
		}
		// go-mail would only speak TLS from the first byte on a connection
		// it dialled itself.
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(dialCtx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return tc, nil
	})
	if err != nil {
		return err
	}
	err = c.DialAndSendWithContext(ctx, msg)
	switch {
	case err == nil:
		return nil
	case msg.IsDelivered():
		// The server has taken the message; only QUIT failed. Reporting
		// failure would make a retry deliver it twice.
		return nil
	case strings.Contains(err.Error(), noStartTLS):
		return ErrStartTLSNotOffered
	}
	return err
}

// Permanent reports whether trying err's message again cannot help: it was
// refused before sending (ErrInvalidMessage), or the server refused it with
// a permanent (5xx) reply, such as an unknown recipient.
func Permanent(err error) bool {
	if errors.Is(err, ErrInvalidMessage) {
		return true
	}
	var se *gomail.SendError
	return errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600
}

// noStartTLS is how go-mail v0.8.1 reports a server that does not offer
// STARTTLS; it has no error value to compare with. TestSMTPRefusals notices
// if an upgrade changes the wording.
const noStartTLS = "target host does not support STARTTLS"

// client returns a go-mail client for one Send, which dials with dial.
func (s *SMTP) client(dial gomail.DialContextFunc) (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(s.tlsConfig()),
		// The machine's host name, go-mail's default, is nobody's business.
		gomail.WithHELO("localhost"),
		// Each connection carries one message: nothing to check before it or
		// to reset after it.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(tlsOnlyAuth{
			smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host, false),
		}))
	}
	if dial != nil {
		opts = append(opts, gomail.WithDialContextFunc(dial))
	}
	return gomail.NewClient(s.cfg.Host, opts...)
}

// tlsOnlyAuth is AUTH PLAIN that never sends the password in the clear.
// go-mail's PlainAuth would, to a server named localhost or 127.0.0.1.
type tlsOnlyAuth struct{ smtp.Auth }

// Start refuses a connection without TLS and a server that does not offer
// AUTH PLAIN, before anything is sent.
func (a tlsOnlyAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		// withDefaults already refuses credentials without TLS; checked
		// again because the password must never cross the network in the
		// clear.
		return "", nil, errors.New("refusing to authenticate without TLS")
	}
	if !slices.ContainsFunc(server.Auth, func(m string) bool { return strings.EqualFold(m, "PLAIN") }) {
		return "", nil, errors.New("server does not offer AUTH PLAIN")
	}
	return a.Auth.Start(server)
}

func (s *SMTP) tlsConfig() *tls.Config {
	var c *tls.Config
	if s.cfg.TLSConfig != nil {
		c = s.cfg.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = s.cfg.Host
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// ParseSMTPURL reads an SMTP setting of the form
//
//	smtp://user:password@host:587?from=FastImage%20%3Cno-reply%40example.com%3E
//
// smtp:// uses STARTTLS (port 587 by default) unless tls=none is given;
// smtps:// uses implicit TLS (port 465 by default). User and password are
// optional and must be percent-encoded. Query parameters: from (required,
// an address with an optional display name), tls (starttls, tls or none) and
// timeout (a Go duration such as 10s). The errors it returns never contain
// the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	cfg, err := parseSMTPURL(raw)
	if err != nil {
		// A half-read config still holds the password; hand back nothing.
		return SMTPConfig{}, err
	}
	return cfg, nil
}

func parseSMTPURL(raw string) (SMTPConfig, error) {
	var cfg SMTPConfig
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes pieces of its input, and a password with a stray
		// "/" or "?" would end up in the message.
		return cfg, errors.New("SMTP URL does not parse; percent-encode special characters in the user name and password")
	}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		cfg.TLS = TLSStartTLS
	case "smtps":
		cfg.TLS = TLSImplicit
	default:
		return cfg, errors.New("SMTP URL must start with smtp:// or smtps://")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return cfg, errors.New("SMTP URL must be smtp://[user:password@]host[:port][?from=…]")
	}
	cfg.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return cfg, errors.New("SMTP URL port is not a number")
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return cfg, errors.New("SMTP URL query does not parse")
	}
	for key, vals := range q {
		if len(vals) != 1 {
			return cfg, fmt.Errorf("SMTP URL parameter %q is given %d times", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "from":
			a, err := netmail.ParseAddress(v)
			if err != nil {
				return cfg, fmt.Errorf("SMTP URL from=%q is not an address such as FastImage <no-reply@example.com>", v)
			}
			cfg.From, cfg.FromName = a.Address, a.Name
		case "tls":
			mode := TLSMode(strings.ToLower(v))
			if mode != TLSStartTLS && mode != TLSImplicit && mode != TLSNone {
				return cfg, fmt.Errorf("SMTP URL tls=%q is not starttls, tls or none", v)
			}
			if cfg.TLS == TLSImplicit && mode != TLSImplicit {
				return cfg, fmt.Errorf("SMTP URL tls=%q contradicts smtps://", v)
			}
			cfg.TLS = mode
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return cfg, fmt.Errorf("SMTP URL timeout=%q is not a positive duration such as 10s", v)
			}
			cfg.Timeout = d
		default:
			return cfg, fmt.Errorf("SMTP URL parameter %q is unknown; use from, tls or timeout", key)
		}
	}
	if cfg.From == "" {
		return cfg, errors.New("SMTP URL needs a from parameter, e.g. ?from=FastImage%20%3Cno-reply%40example.com%3E")
	}
	return cfg.withDefaults()
}

package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
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

// DefaultSMTPTimeout bounds dialling and each SMTP command when
// SMTPConfig.Timeout is zero.
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
	// Timeout bounds dialling and each command; DefaultSMTPTimeout when zero.
	// A deadline on the context passed to Send also applies.
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
// connection.
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
	return &SMTP{
		cfg:  cfg,
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from: netmail.Address{Name: cfg.FromName, Address: cfg.From},
	}, nil
}

// Send submits m. Every network step must finish within the configured
// timeout and before ctx is done. An error wraps ErrInvalidMessage when m is
// refused before connecting, ErrStartTLSNotOffered when the server cannot
// upgrade to TLS, the context's error when ctx ended, and otherwise the
// server's reply (a *textproto.Error) or the network error.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	body, err := m.encode(s.from, time.Now())
	if err != nil {
		return fmt.Errorf("encode %s mail: %w", m.Kind, err)
	}
	if err := s.send(ctx, m.To, body); err != nil {
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

// aLongTimeAgo is a deadline in the past, which makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

func (s *SMTP) send(ctx context.Context, to string, body []byte) error {
	d := net.Dialer{Timeout: s.cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer raw.Close()
	// Cancelling ctx interrupts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(aLongTimeAgo) })
	defer stop()
	// step gives the next command its own deadline. Setting it before
	// checking ctx means a cancellation cannot slip in between and be
	// overwritten: either the check sees it, or AfterFunc runs later.
	step := func() error {
		dl := time.Now().Add(s.cfg.Timeout)
		if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
			dl = cd
		}
		if err := raw.SetDeadline(dl); err != nil {
			return err
		}
		return ctx.Err()
	}

	tlsConfig := s.tlsConfig()
	conn := raw
	if s.cfg.TLS == TLSImplicit {
		if err := step(); err != nil {
			return err
		}
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}

	if err := step(); err != nil {
		return err
	}
	// NewClient reads the greeting; it sees a *tls.Conn and so knows when the
	// connection is already private.
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := step(); err != nil {
		return err
	}
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}

	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return ErrStartTLSNotOffered
		}
		if err := step(); err != nil {
			return err
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}

	if s.cfg.Username != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS {
			// withDefaults already refuses this; checked again because the
			// password must never cross the network in the clear.
			return errors.New("refusing to authenticate without TLS")
		}
		ok, mechs := c.Extension("AUTH")
		if !ok || !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return errors.New("server does not offer AUTH PLAIN")
		}
		if err := step(); err != nil {
			return err
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return fmt.Errorf("AUTH as %q: %w", s.cfg.Username, err)
		}
	}

	if err := step(); err != nil {
		return err
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := step(); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	if err := step(); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The server has taken the message. A failed QUIT must not report failure,
	// or a retry would deliver it twice.
	if step() == nil {
		_ = c.Quit()
	}
	return nil
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

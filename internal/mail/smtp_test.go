package mail_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/fastimage/api/internal/mail"
)

// fakeSMTP is an SMTP server on 127.0.0.1 speaking just enough of RFC 5321
// for the client: EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT. It
// records every message it accepts.
type fakeSMTP struct {
	tlsConfig   *tls.Config
	port        int
	noStartTLS  bool   // do not offer STARTTLS
	implicitTLS bool   // speak TLS from the first byte
	user, pass  string // required credentials, if user is set
	stallAt     string // "greeting" or "DATA": never answer from there on
	rejectRcpt  bool   // refuse every recipient with 550
	deferRcpt   int    // refuse the first deferRcpt recipients with 451 (try later)
	dropAtQuit  bool   // hang up on QUIT without a reply

	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	conns     int
	closed    int
	clearAuth int // AUTH commands sent without TLS
	got       []received
}

// received is one message as the server saw it.
type received struct {
	tls    bool
	authed bool
	from   string
	rcpt   []string
	data   string
}

// testCert returns a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// start listens and serves until the test ends; it returns the client TLS
// config that trusts the server.
func (s *fakeSMTP) start(t *testing.T) *tls.Config {
	t.Helper()
	cert, pool := testCert(t)
	s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.done = make(chan struct{})
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.wg.Wait()
	})
	return &tls.Config{RootCAs: pool}
}

func (s *fakeSMTP) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		s.wg.Add(2)
		go func() {
			defer s.wg.Done()
			s.serve(conn)
			s.mu.Lock()
			s.closed++
			s.mu.Unlock()
		}()
		// Closing the connection when the test ends unblocks serve.
		go func() {
			defer s.wg.Done()
			<-s.done
			conn.Close()
		}()
	}
}

func (s *fakeSMTP) serve(conn net.Conn) {
	defer conn.Close()
	stall := func() { <-s.done }
	var rec received
	if s.implicitTLS {
		tc := tls.Server(conn, s.tlsConfig)
		if tc.Handshake() != nil {
			return
		}
		conn, rec.tls = tc, true
	}
	if s.stallAt == "greeting" {
		stall()
		return
	}
	r := bufio.NewReader(conn)
	reply := func(lines ...string) {
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			fmt.Fprintf(conn, "%s%s%s\r\n", l[:3], sep, l[3:])
		}
	}
	reply("220 fake ESMTP ready")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{"250fake greets " + arg}
			if !s.noStartTLS && !rec.tls {
				lines = append(lines, "250STARTTLS")
			}
			reply(append(lines, "250AUTH PLAIN", "2508BITMIME")...)
		case "STARTTLS":
			if s.noStartTLS || rec.tls {
				reply("502 not here")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(conn, s.tlsConfig)
			if tc.Handshake() != nil {
				return
			}
			conn, r, rec = tc, bufio.NewReader(tc), received{tls: true}
		case "AUTH":
			if !rec.tls {
				s.mu.Lock()
				s.clearAuth++
				s.mu.Unlock()
			}
			mech, resp, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(resp)
			creds := strings.Split(string(b), "\x00")
			if strings.ToUpper(mech) == "PLAIN" && len(creds) == 3 && creds[1] == s.user && creds[2] == s.pass {
				rec.authed = true
				reply("235 2.7.0 authenticated")
			} else {
				reply("535 5.7.8 authentication failed")
			}
		case "MAIL":
			if s.user != "" && !rec.authed {
				reply("530 5.7.0 authentication required")
				continue
			}
			from, _, _ := strings.Cut(arg, " ")
			rec.from = strings.TrimPrefix(from, "FROM:")
			reply("250 ok")
		case "RCPT":
			if s.rejectRcpt {
				reply("550 5.1.1 no such user")
				continue
			}
			s.mu.Lock()
			deferred := s.deferRcpt > 0
			s.deferRcpt--
			s.mu.Unlock()
			if deferred {
				reply("451 4.3.0 try again later")
				continue
			}
			rec.rcpt = append(rec.rcpt, strings.TrimPrefix(arg, "TO:"))
			reply("250 ok")
		case "DATA":
			reply("354 go on")
			// Read the raw lines, not through textproto's DotReader, which
			// would hide bare LFs.
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			if s.stallAt == "DATA" {
				stall()
				return
			}
			rec.data = data.String()
			s.mu.Lock()
			s.got = append(s.got, rec)
			s.mu.Unlock()
			reply("250 queued")
		case "QUIT":
			if !s.dropAtQuit {
				reply("221 bye")
			}
			return
		default:
			reply("502 unknown command")
		}
	}
}

func (s *fakeSMTP) received() ([]received, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...), s.conns
}

func (s *fakeSMTP) clearAuthCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clearAuth
}

// waitHungUp fails t unless every connection to s has ended within a
// second: a client that gives up must not leave its connection open.
func (s *fakeSMTP) waitHungUp(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		open := s.conns - s.closed
		s.mu.Unlock()
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("got %d connections still open, want 0", open)
			return
		}
	}
}

func testMessage() mail.Message {
	return mail.Message{
		Kind:    "verify_email",
		To:      "ada@example.com",
		Subject: "Vérifiez votre adresse e-mail pour terminer votre inscription à FastImage ✓",
		Text: "Hello Ada,\n\nOpen https://fastimage.example/verify?token=abc to verify.\n" +
			".a line that starts with a dot\n" + strings.Repeat("long line ", 20) + "end",
		HTML: `<p>Hello Ada, <a href="https://fastimage.example/verify?token=abc">verify</a> — merci.</p>`,
	}
}

func TestSMTPSend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		server *fakeSMTP
		mode   mail.TLSMode
		user   string
	}{
		{name: "starttls and auth", server: &fakeSMTP{user: "mailer", pass: "s3cret"}, mode: mail.TLSStartTLS, user: "mailer"},
		{name: "implicit tls and auth", server: &fakeSMTP{implicitTLS: true, user: "mailer", pass: "s3cret"}, mode: mail.TLSImplicit, user: "mailer"},
		{name: "starttls without auth", server: &fakeSMTP{}, mode: ""},
		{name: "plain text for local testing", server: &fakeSMTP{noStartTLS: true}, mode: mail.TLSNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tc.server
			trust := srv.start(t)
			m, err := mail.NewSMTP(mail.SMTPConfig{
				Host: "127.0.0.1", Port: srv.port,
				Username: tc.user, Password: "s3cret",
				From: "no-reply@fastimage.example", FromName: "FastImage Café",
				TLS: tc.mode, TLSConfig: trust, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := testMessage()
			if err := m.Send(context.Background(), want); err != nil {
				t.Fatalf("Send: %v", err)
			}

			got, _ := srv.received()
			if len(got) != 1 {
				t.Fatalf("got %d messages, want 1", len(got))
			}
			rec := got[0]
			if wantTLS := tc.mode != mail.TLSNone; rec.tls != wantTLS {
				t.Errorf("TLS: got %v, want %v", rec.tls, wantTLS)
			}
			if rec.authed != (tc.user != "") {
				t.Errorf("authenticated: got %v, want %v", rec.authed, tc.user != "")
			}
			if rec.from != "<no-reply@fastimage.example>" {
				t.Errorf("MAIL FROM: got %v, want <no-reply@fastimage.example>", rec.from)
			}
			if len(rec.rcpt) != 1 || rec.rcpt[0] != "<ada@example.com>" {
				t.Errorf("RCPT TO: got %v, want [<ada@example.com>]", rec.rcpt)
			}
			checkMIME(t, rec.data, want)
		})
	}
}

// checkMIME parses data as a mail message and checks its headers and both
// bodies against want.
func checkMIME(t *testing.T, data string, want mail.Message) {
	t.Helper()
	for i, line := range strings.Split(data, "\r\n") {
		if len(line) > 78 {
			t.Errorf("line %d is %d bytes long, want at most 78", i, len(line))
		}
		if strings.ContainsRune(line, '\n') {
			t.Errorf("line %d has a bare LF", i)
		}
	}
	msg, err := netmail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	h := msg.Header
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil || subject != want.Subject {
		t.Errorf("Subject: got %q (%v), want %q", subject, err, want.Subject)
	}
	// Charset names are case-insensitive (RFC 2047, section 2).
	if raw := h.Get("Subject"); !strings.HasPrefix(strings.ToLower(raw), "=?utf-8?") {
		t.Errorf("raw Subject: got %q, want an RFC 2047 encoded word", raw)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "FastImage Café" || from[0].Address != "no-reply@fastimage.example" {
		t.Errorf("From: got %v (%v), want FastImage Café <no-reply@fastimage.example>", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != want.To {
		t.Errorf("To: got %v (%v), want %v", to, err, want.To)
	}
	if d, err := h.Date(); err != nil || time.Since(d).Abs() > time.Minute {
		t.Errorf("Date: got %v (%v), want about now", d, err)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@fastimage.example>") {
		t.Errorf("Message-ID: got %q, want <…@fastimage.example>", id)
	}
	if v := h.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version: got %q, want 1.0", v)
	}
	if v := h.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted: got %q, want auto-generated", v)
	}
	for _, name := range []string{"User-Agent", "X-Mailer"} {
		if v := h.Get(name); v != "" {
			t.Errorf("%s: got %q, want none", name, v)
		}
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type: got %q (%v), want multipart/alternative", mt, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for _, wp := range []struct{ typ, body string }{
		{"text/plain", want.Text},
		{"text/html", want.HTML},
	} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %s: %v", wp.typ, err)
		}
		pt, pp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if pt != wp.typ || !strings.EqualFold(pp["charset"], "utf-8") {
			t.Errorf("part Content-Type: got %q %v, want %s; charset=utf-8", pt, pp, wp.typ)
		}
		// multipart.Reader decodes quoted-printable by itself.
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ReplaceAll(string(b), "\r\n", "\n"); got != wp.body {
			t.Errorf("%s body: got %q, want %q", wp.typ, got, wp.body)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after two parts: got %v, want io.EOF", err)
	}
}

func TestSMTPSendTextOnly(t *testing.T) {
	t.Parallel()
	srv := &fakeSMTP{}
	trust := srv.start(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example", TLSConfig: trust})
	if err != nil {
		t.Fatal(err)
	}
	want := testMessage()
	want.HTML = ""
	if err := m.Send(context.Background(), want); err != nil {
		t.Fatalf("Send: %v", err)
	}
	recs, _ := srv.received()
	if len(recs) != 1 {
		t.Fatalf("got %d messages, want 1", len(recs))
	}
	msg, err := netmail.ReadMessage(strings.NewReader(recs[0].data))
	if err != nil {
		t.Fatal(err)
	}
	ct := msg.Header.Get("Content-Type")
	if mt, params, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type: got %q, want text/plain; charset=utf-8", ct)
	}
	if cte := msg.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding: got %q, want quoted-printable", cte)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	// The last line break ends the message's last line, not the text.
	got := strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if got != want.Text {
		t.Errorf("text body: got %q, want %q", got, want.Text)
	}
}

func TestSMTPSendReplyTo(t *testing.T) {
	t.Parallel()
	srv := &fakeSMTP{}
	trust := srv.start(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example", TLSConfig: trust})
	if err != nil {
		t.Fatal(err)
	}
	for _, replyTo := range []string{"", "ada@example.com"} {
		want := testMessage()
		want.ReplyTo = replyTo
		if err := m.Send(context.Background(), want); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	recs, _ := srv.received()
	if len(recs) != 2 {
		t.Fatalf("got %d messages, want 2", len(recs))
	}
	for i, want := range []string{"", "<ada@example.com>"} {
		msg, err := netmail.ReadMessage(strings.NewReader(recs[i].data))
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get("Reply-To"); got != want {
			t.Errorf("message %d: Reply-To %q, want %q", i+1, got, want)
		}
	}
}

func TestSMTPRefusals(t *testing.T) {
	t.Parallel()
	untrusted := func(t *testing.T, err error) {
		var ve *tls.CertificateVerificationError
		if !errors.As(err, &ve) {
			t.Errorf("got %v, want a *tls.CertificateVerificationError", err)
		}
	}
	for _, tc := range []struct {
		name     string
		server   *fakeSMTP
		mode     mail.TLSMode
		distrust bool // trust no certificate authority
		check    func(t *testing.T, err error)
	}{
		{
			name:     "untrusted certificate, STARTTLS",
			server:   &fakeSMTP{user: "mailer", pass: "s3cret"},
			distrust: true,
			check:    untrusted,
		},
		{
			name:     "untrusted certificate, implicit TLS",
			server:   &fakeSMTP{implicitTLS: true, user: "mailer", pass: "s3cret"},
			mode:     mail.TLSImplicit,
			distrust: true,
			check:    untrusted,
		},
		{
			name:   "no STARTTLS offered",
			server: &fakeSMTP{noStartTLS: true, user: "mailer", pass: "s3cret"},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, mail.ErrStartTLSNotOffered) {
					t.Errorf("got %v, want ErrStartTLSNotOffered", err)
				}
			},
		},
		{
			name:   "wrong credentials",
			server: &fakeSMTP{user: "mailer", pass: "another"},
			check: func(t *testing.T, err error) {
				var te *textproto.Error
				if !errors.As(err, &te) || te.Code != 535 {
					t.Errorf("got %v, want a 535 reply", err)
				}
			},
		},
		{
			name:   "recipient refused",
			server: &fakeSMTP{user: "mailer", pass: "s3cret", rejectRcpt: true},
			check: func(t *testing.T, err error) {
				var se *gomail.SendError
				if !errors.As(err, &se) || se.ErrorCode() != 550 || se.IsTemp() {
					t.Errorf("got %v, want a permanent 550 reply", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tc.server
			trust := srv.start(t)
			if tc.distrust {
				trust = &tls.Config{RootCAs: x509.NewCertPool()}
			}
			m, err := mail.NewSMTP(mail.SMTPConfig{
				Host: "127.0.0.1", Port: srv.port, Username: "mailer", Password: "s3cret",
				From: "no-reply@fastimage.example", TLS: tc.mode, TLSConfig: trust,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = m.Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("got no error, want one")
			}
			tc.check(t, err)
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q contains the password", err)
			}
			if got, _ := srv.received(); len(got) != 0 {
				t.Errorf("got %d messages delivered, want 0", len(got))
			}
			srv.waitHungUp(t)
			if n := srv.clearAuthCount(); n != 0 {
				t.Errorf("got %d AUTH commands without TLS, want 0", n)
			}
		})
	}
}

// A server that has taken the message but hangs up on QUIT has still taken
// it: reporting failure would make a retry deliver it twice.
func TestSMTPSendIgnoresFailedQuit(t *testing.T) {
	t.Parallel()
	srv := &fakeSMTP{dropAtQuit: true}
	trust := srv.start(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example", TLSConfig: trust})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), testMessage()); err != nil {
		t.Errorf("Send: got %v, want no error", err)
	}
	if got, _ := srv.received(); len(got) != 1 {
		t.Errorf("got %d messages delivered, want 1", len(got))
	}
}

func TestSMTPTimeouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		stallAt    string
		timeout    time.Duration
		ctxTimeout time.Duration
		ctxErr     bool
	}{
		{name: "silent greeting, command timeout", stallAt: "greeting", timeout: 300 * time.Millisecond},
		{name: "silent after DATA, command timeout", stallAt: "DATA", timeout: 300 * time.Millisecond},
		{name: "silent greeting, context deadline", stallAt: "greeting", timeout: time.Minute, ctxTimeout: 300 * time.Millisecond, ctxErr: true},
		{name: "silent after DATA, context deadline", stallAt: "DATA", timeout: time.Minute, ctxTimeout: 300 * time.Millisecond, ctxErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := &fakeSMTP{stallAt: tc.stallAt}
			trust := srv.start(t)
			m, err := mail.NewSMTP(mail.SMTPConfig{
				Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example",
				TLSConfig: trust, Timeout: tc.timeout,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			err = m.Send(ctx, testMessage())
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("Send took %v, want about 300ms", elapsed)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("got %v, want a network timeout", err)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tc.ctxErr {
				t.Errorf("errors.Is(err, context.DeadlineExceeded): got %v, want %v", got, tc.ctxErr)
			}
		})
	}
}

func TestSMTPCancel(t *testing.T) {
	t.Parallel()
	srv := &fakeSMTP{stallAt: "greeting"}
	trust := srv.start(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example", TLSConfig: trust})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err = m.Send(ctx, testMessage())
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Send took %v after cancel, want about 200ms", elapsed)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestSendRefusesInvalidMessages(t *testing.T) {
	t.Parallel()
	srv := &fakeSMTP{}
	trust := srv.start(t)
	m, err := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: srv.port, From: "no-reply@fastimage.example", TLSConfig: trust})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*mail.Message)
	}{
		{"CRLF in subject", func(m *mail.Message) { m.Subject = "Hi\r\nBcc: victim@example.com" }},
		{"LF in subject", func(m *mail.Message) { m.Subject = "Hi\nBcc: victim@example.com" }},
		{"CRLF in recipient", func(m *mail.Message) { m.To = "ada@example.com\r\nBcc: victim@example.com" }},
		{"two recipients", func(m *mail.Message) { m.To = "ada@example.com, victim@example.com" }},
		{"display name in recipient", func(m *mail.Message) { m.To = "Ada <ada@example.com>" }},
		{"no recipient", func(m *mail.Message) { m.To = "" }},
		{"CRLF in reply-to", func(m *mail.Message) { m.ReplyTo = "ada@example.com\r\nBcc: victim@example.com" }},
		{"two reply-to addresses", func(m *mail.Message) { m.ReplyTo = "ada@example.com, victim@example.com" }},
		{"display name in reply-to", func(m *mail.Message) { m.ReplyTo = "Ada <ada@example.com>" }},
		{"no kind", func(m *mail.Message) { m.Kind = "" }},
		{"no subject", func(m *mail.Message) { m.Subject = " " }},
		{"no text", func(m *mail.Message) { m.Text = "" }},
		{"subject too long", func(m *mail.Message) { m.Subject = strings.Repeat("é", 201) }},
		{"invalid UTF-8", func(m *mail.Message) { m.Text = "\xff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := testMessage()
			tc.change(&msg)
			if err := m.Send(context.Background(), msg); !errors.Is(err, mail.ErrInvalidMessage) {
				t.Errorf("got %v, want ErrInvalidMessage", err)
			}
		})
	}
	if _, conns := srv.received(); conns != 0 {
		t.Errorf("got %d connections, want 0", conns)
	}
}

func TestNewSMTPRefusesBadConfig(t *testing.T) {
	t.Parallel()
	good := mail.SMTPConfig{Host: "smtp.example.com", From: "no-reply@example.com"}
	for _, tc := range []struct {
		name   string
		change func(*mail.SMTPConfig)
	}{
		{"no host", func(c *mail.SMTPConfig) { c.Host = "" }},
		{"CRLF in from", func(c *mail.SMTPConfig) { c.From = "a@example.com\r\nBcc: b@example.com" }},
		{"CRLF in from name", func(c *mail.SMTPConfig) { c.FromName = "FastImage\r\nBcc: b@example.com" }},
		{"from is not an address", func(c *mail.SMTPConfig) { c.From = "FastImage" }},
		{"no from", func(c *mail.SMTPConfig) { c.From = "" }},
		{"credentials without TLS", func(c *mail.SMTPConfig) { c.TLS, c.Username, c.Password = mail.TLSNone, "u", "p" }},
		{"unknown TLS mode", func(c *mail.SMTPConfig) { c.TLS = "ssl" }},
		{"port out of range", func(c *mail.SMTPConfig) { c.Port = 70000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			if _, err := mail.NewSMTP(c); err == nil {
				t.Errorf("got no error for %v, want one", c)
			}
		})
	}
	if _, err := mail.NewSMTP(good); err != nil {
		t.Errorf("good config: got %v, want no error", err)
	}
}

func TestSMTPConfigHidesPassword(t *testing.T) {
	t.Parallel()
	c := mail.SMTPConfig{Host: "smtp.example.com", Username: "u", Password: "hunter2", From: "a@example.com"}
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("mail", "smtp", c)
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("mail", "smtp", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), js.String(), text.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("got %q, want no password", s)
		}
	}
}

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw     string
		want    mail.SMTPConfig
		wantErr bool
	}{
		{
			raw: "smtp://user:pass@smtp.example.com:587?from=FastImage%20%3Cno-reply@example.com%3E&tls=starttls",
			want: mail.SMTPConfig{Host: "smtp.example.com", Port: 587, Username: "user", Password: "pass",
				From: "no-reply@example.com", FromName: "FastImage", TLS: mail.TLSStartTLS, Timeout: mail.DefaultSMTPTimeout},
		},
		{
			raw: "smtp://smtp.example.com?from=no-reply@example.com",
			want: mail.SMTPConfig{Host: "smtp.example.com", Port: 587, From: "no-reply@example.com",
				TLS: mail.TLSStartTLS, Timeout: mail.DefaultSMTPTimeout},
		},
		{
			raw: "smtps://apikey:p%40ss%2Fw%3Ford@smtp.example.com?from=no-reply@example.com&timeout=3s",
			want: mail.SMTPConfig{Host: "smtp.example.com", Port: 465, Username: "apikey", Password: "p@ss/w?ord",
				From: "no-reply@example.com", TLS: mail.TLSImplicit, Timeout: 3 * time.Second},
		},
		{
			raw: "smtp://127.0.0.1:1025?from=no-reply@example.com&tls=none",
			want: mail.SMTPConfig{Host: "127.0.0.1", Port: 1025, From: "no-reply@example.com",
				TLS: mail.TLSNone, Timeout: mail.DefaultSMTPTimeout},
		},
		{
			raw: "smtp://[::1]:2525/?from=no-reply@example.com",
			want: mail.SMTPConfig{Host: "::1", Port: 2525, From: "no-reply@example.com",
				TLS: mail.TLSStartTLS, Timeout: mail.DefaultSMTPTimeout},
		},
		{raw: "smtp://smtp.example.com", wantErr: true},                                              // no from
		{raw: "http://smtp.example.com?from=no-reply@example.com", wantErr: true},                    // wrong scheme
		{raw: "smtp://?from=no-reply@example.com", wantErr: true},                                    // no host
		{raw: "smtp://smtp.example.com?from=nobody", wantErr: true},                                  // from is not an address
		{raw: "smtp://smtp.example.com?from=no-reply@example.com&tls=ssl", wantErr: true},            // unknown mode
		{raw: "smtps://smtp.example.com?from=no-reply@example.com&tls=starttls", wantErr: true},      // contradiction
		{raw: "smtp://u:hunter2@smtp.example.com?from=no-reply@example.com&tls=none", wantErr: true}, // credentials in clear
		{raw: "smtp://smtp.example.com?from=no-reply@example.com&user=x", wantErr: true},             // unknown parameter
		{raw: "smtp://smtp.example.com?from=no-reply@example.com&timeout=soon", wantErr: true},       // bad duration
		{raw: "smtp://smtp.example.com/path?from=no-reply@example.com", wantErr: true},               // path
		{raw: "smtp://user:hunt/er2@smtp.example.com?from=no-reply@example.com", wantErr: true},      // unencoded "/"
		{raw: "smtp://smtp.example.com?from=no-reply@example.com&from=x@example.com", wantErr: true}, // twice
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := mail.ParseSMTPURL(tc.raw)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				if strings.Contains(err.Error(), "hunt") {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got != tc.want {
				t.Errorf("got %#v, want %#v", fieldsOf(got), fieldsOf(tc.want))
			}
		})
	}
}

// fieldsOf lists c's fields, password included, for a failure message;
// %v of an SMTPConfig hides the password.
func fieldsOf(c mail.SMTPConfig) []string {
	return []string{c.Host, strconv.Itoa(c.Port), c.Username, c.Password, c.From, c.FromName, string(c.TLS), c.Timeout.String()}
}

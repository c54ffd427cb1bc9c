package server

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/mail"
)

// servesDevOutbox reports whether /dev/outbox is served: in development,
// with mail kept local, and only when the public URL is on this machine.
// APP_ENV defaults to development, so a server put under a public name
// without APP_ENV=production would otherwise show anyone every user's
// reset and verification links.
func (s *Server) servesDevOutbox() bool {
	if s.cfg.Env != config.Development || s.outbox == nil || s.cfg.PublicURL == nil {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(s.cfg.PublicURL.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// onlyFromThisMachine answers 404 to a peer that is not a loopback address
// (the connection's own peer: X-Forwarded-For is not asked), for a
// development server made reachable from elsewhere (HTTP_ADDR=0.0.0.0:…)
// with PUBLIC_URL left at localhost.
func onlyFromThisMachine(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !peer.Addr().Unmap().IsLoopback() {
			notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
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

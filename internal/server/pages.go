package server

import (
	"net/http"

	"github.com/fastimage/api/internal/mail"
)

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

package server

import (
	"net/http"

	"github.com/fastimage/api/internal/account"
)

// withClient puts the caller's IP and user agent in the request's context,
// as authenticate does, for endpoints that need no session: the export
// download records who fetched it.
func (s *Server) withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := account.WithClient(r.Context(), account.Client{IP: s.clientIP(r), UserAgent: r.UserAgent()})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

package apperr

import (
	"encoding/json"
	"net/http"
)

// WriteHTTP answers an HTTP request outside GraphQL (webhooks, downloads,
// signed blob URLs) in the shape every client of the API already parses:
// {"errors": [{"message": …, "extensions": {"code": …}}]}.
func WriteHTTP(w http.ResponseWriter, status int, code Code, message string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	type entry struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	_ = json.NewEncoder(w).Encode(map[string][]entry{"errors": {{Message: message, Extensions: map[string]any{"code": code}}}})
}

package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/fastimage/api/internal/apperr"
)

// The checks below answer, with a code, the requests that gqlgen's own
// transports would refuse with an uncoded error (or, for SSE, an error that
// echoes the body back and writes it to the standard logger).

// otherMethods answers what no transport serves: methods other than GET and
// POST (gqlgen would say "transport not supported", without a code).
type otherMethods struct{}

var _ graphql.Transport = otherMethods{}

func (otherMethods) Supports(*http.Request) bool { return true }

func (otherMethods) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	w.Header().Set("Allow", "GET, POST")
	writeGraphQLError(w, mediaJSON, http.StatusMethodNotAllowed, apperr.BadRequest,
		fmt.Sprintf("/graphql answers GET and POST (and WebSocket upgrades), not %s.", r.Method))
}

// checkSSERequest reads and checks the body of an SSE request before gqlgen's
// SSE transport sees it, and puts it back for that transport to read. It
// reports whether the request may go on; if not, it has answered.
func checkSSERequest(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			writeGraphQLError(w, mediaJSON, http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge,
				fmt.Sprintf("The request body is larger than the %d-byte limit; send a smaller query or fewer variables.", tooLarge.Limit))
			return false
		}
		writeGraphQLError(w, mediaJSON, http.StatusBadRequest, apperr.BadRequest, "The request body could not be read; send it again.")
		return false
	}
	var params graphql.RawParams
	msg := decodeParams(body, "request body", &params)
	if msg == "" {
		msg = checkQuery(&params)
	}
	if msg != "" {
		writeGraphQLError(w, mediaJSON, http.StatusBadRequest, apperr.BadRequest, msg)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// checkUpgrade refuses, with a code, a WebSocket handshake that the upgrader
// would refuse (gqlgen would answer "unable to upgrade" without one), and
// new sockets during shutdown. It reports whether the upgrade may go on; if
// not, it has answered.
func checkUpgrade(w http.ResponseWriter, r *http.Request, a *wsAcceptor) bool {
	switch {
	case !headerHas(r, "Upgrade", "websocket") || !headerHas(r, "Connection", "upgrade"):
		writeGraphQLError(w, mediaJSON, http.StatusBadRequest, apperr.BadRequest,
			"/graphql upgrades only to WebSocket (Connection: Upgrade, Upgrade: websocket); send queries and mutations as plain GET or POST.")
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		writeGraphQLError(w, mediaJSON, http.StatusMethodNotAllowed, apperr.BadRequest, "Open a WebSocket with GET.")
	case !headerHas(r, "Sec-WebSocket-Version", "13") || r.Header.Get("Sec-WebSocket-Key") == "":
		w.Header().Set("Sec-WebSocket-Version", "13")
		writeGraphQLError(w, mediaJSON, http.StatusBadRequest, apperr.BadRequest,
			"The WebSocket handshake needs Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key; use a WebSocket client library.")
	case a != nil && a.shuttingDown():
		w.Header().Set("Retry-After", "1")
		writeGraphQLError(w, mediaJSON, http.StatusServiceUnavailable, apperr.Unavailable,
			"This server is shutting down; connect again and another will answer.")
	default:
		return true
	}
	return false
}

// headerHas reports whether a comma-separated header holds token, ignoring
// case.
func headerHas(r *http.Request, name, token string) bool {
	for _, v := range r.Header.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

package server

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/logging"
)

// withRequestID gives every request an id, taken from a well-formed incoming
// X-Request-ID (a load balancer's) or made here, and returns it in the
// response header; every log line of the request carries it.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// recoverHTTP turns a panic outside GraphQL execution into a 500 with the
// request id, logged with its cause.
func (s *Server) recoverHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic in HTTP handler", "panic", fmt.Sprint(p), "path", account.Truncate(r.URL.Path, maxLoggedPath))
				id := logging.RequestID(r.Context())
				writeJSONError(w, http.StatusInternalServerError, apperr.Internal,
					"Something went wrong on our side. If it keeps happening, contact support and quote request id "+id+".")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// maxLoggedPath bounds the request path in log lines; like the user agent,
// it is the client's to choose.
const maxLoggedPath = 1024

// observe counts and times the requests of one route and logs each once.
// The path is logged without its query string, which may carry variables,
// and cut, like the user agent, to a bounded size.
func (s *Server) observe(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		if rec.hijacked {
			status = http.StatusSwitchingProtocols
		}
		method := methodLabel(r.Method)
		s.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		elapsed := time.Since(start)
		streaming := rec.hijacked || strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream")
		if !streaming {
			s.latency.WithLabelValues(route, method).Observe(elapsed.Seconds())
		}
		level := slogLevelFor(route, status)
		s.log.Log(r.Context(), level, "http request",
			"method", method, "path", account.Truncate(r.URL.Path, maxLoggedPath), "route", route, "status", status,
			"bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds())/1000,
			"remote", r.RemoteAddr, "user_agent", account.Truncate(r.UserAgent(), account.MaxUserAgentBytes))
	})
}

// methodLabel names a request's method for metrics and logs: a client may
// send any token as its method, and each new one would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// statusRecorder remembers the status and size of a response. It passes on
// Flush (SSE) and Hijack (WebSocket) to the writer underneath.
type statusRecorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	hijacked bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	c, rw, err := h.Hijack()
	if err == nil {
		r.hijacked = true
	}
	return c, rw, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// originList is the set of browser origins allowed to call the API and open
// WebSockets: the public URL's origin and ALLOWED_ORIGINS.
type originList struct{ allowed map[string]bool }

func newOriginList(origins []string) *originList {
	l := &originList{allowed: make(map[string]bool, len(origins))}
	for _, o := range origins {
		l.allowed[strings.ToLower(o)] = true
	}
	return l
}

// allows reports whether a request's Origin header may proceed. Requests with
// no Origin come from programs, not browsers, and carry no ambient cookies
// from another site, so they pass.
func (l *originList) allows(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return l.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// cors answers preflights and marks responses readable by allowed origins.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin != "" && s.origins.allows(origin) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After")
		}
		if r.Method == http.MethodOptions {
			if origin != "" && s.origins.allows(origin) {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Content-Type, Accept, Authorization, X-Request-ID")
				h.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkUpgradeOrigin refuses WebSocket upgrades from browser origins that are
// not allowed, before gqlgen sees them, with a clear 403.
func (s *Server) checkUpgradeOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" && !s.origins.allows(r.Header.Get("Origin")) {
			writeJSONError(w, http.StatusForbidden, apperr.Forbidden,
				fmt.Sprintf("WebSocket connections from %q are not allowed; the service accepts them only from its own web pages and the configured ALLOWED_ORIGINS.", r.Header.Get("Origin")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps every request body: JSON GraphQL requests at MaxBodyBytes,
// multipart uploads at MaxUploadBytes plus room for the form's other parts.
// A declared length over the cap is refused before reading anything.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		limit := s.cfg.MaxBodyBytes
		if isMultipart(r) {
			limit = s.cfg.MaxUploadBytes + s.cfg.MaxBodyBytes
		}
		if r.ContentLength > limit {
			writeJSONError(w, http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge,
				fmt.Sprintf("The request body is %d bytes; the limit is %d.", r.ContentLength, limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

func slogLevelFor(route string, status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case route == "/healthz" || route == "/readyz" || route == "/metrics":
		return slog.LevelDebug
	default:
		return slog.LevelInfo
	}
}

// writeJSONError answers outside GraphQL execution with a GraphQL-shaped
// error body, so that every client parses errors one way.
func writeJSONError(w http.ResponseWriter, status int, code apperr.Code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": message, "extensions": map[string]any{"code": code}}},
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSONError(w, http.StatusNotFound, apperr.NotFound, "There is nothing at "+r.URL.Path+"; the API is at /graphql.")
}

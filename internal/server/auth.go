package server

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/apperr"
)

// sessionCookie is the browser's session cookie.
const sessionCookie = "fastimage_session"

// authenticate works out who is calling: the client IP and user agent, and
// the viewer of a session token sent as `Authorization: Bearer` or in the
// session cookie, or of an API key sent as `Authorization: Bearer`. A request that presents a token that no longer works still
// proceeds (it may be signing in again); resolvers that need a viewer get the
// token's error.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := account.WithClient(r.Context(), account.Client{IP: s.clientIP(r), UserAgent: r.UserAgent()})
		if r.Header.Get("Upgrade") == "" {
			ctx = context.WithValue(ctx, responseWriterKey{}, w)
		}
		token, err := s.bearerOrCookie(r)
		var viewer *account.Viewer
		if err == nil && token != "" {
			viewer, err = s.authenticateToken(ctx, token)
		}
		ctx = account.WithAuth(ctx, viewer, err)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearerOrCookie returns the session token a request presents. A cookie
// counts only when the request does not come from a foreign page (see
// cookieCounts): browsers attach cookies to cross-site requests that a
// hostile page can forge. A cookie that does not count is refused with
// UNAUTHENTICATED, not quietly ignored.
func (s *Server) bearerOrCookie(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return "", apperr.Errorf(apperr.Unauthenticated, "Send the session token as `Authorization: Bearer <token>`.")
		}
		return strings.TrimSpace(token), nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", nil
	}
	if !s.cookieCounts(r) {
		return "", apperr.Errorf(apperr.Unauthenticated,
			"The session cookie counts only on requests from this service's own pages and the configured ALLOWED_ORIGINS; from elsewhere, send the session token as `Authorization: Bearer <token>`.")
	}
	if apikey.IsKey(c.Value) {
		// A browser attaches cookies to requests a hostile page forges;
		// a key is a credential its app sends on purpose, in a header.
		return "", apperr.Errorf(apperr.Unauthenticated, "API keys are accepted only as `Authorization: Bearer <key>`, never in a cookie.")
	}
	return c.Value, nil
}

// authenticateToken returns the viewer of a bearer token: an API key
// (fi_live_…, told apart by its prefix) or a session token.
func (s *Server) authenticateToken(ctx context.Context, token string) (*account.Viewer, error) {
	if apikey.IsKey(token) {
		return s.keys.Authenticate(ctx, token)
	}
	return s.accounts.Authenticate(ctx, token)
}

// cookieCounts reports whether a request may be authenticated by the
// session cookie. With an Origin, that origin must be allowed. Without one,
// the browser's Sec-Fetch-Site must say the request comes from the same
// origin or from no page at all (the user's own navigation); programs and
// old browsers send neither header. Browsers omit Origin on some
// cross-site requests, so the Origin check alone would let those through.
func (s *Server) cookieCounts(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		return s.origins.allows(origin)
	}
	switch strings.ToLower(r.Header.Get("Sec-Fetch-Site")) {
	case "", "same-origin", "none":
		return true
	default: // cross-site, same-site (a sibling host we do not list)
		return false
	}
}

// clientIP is the address of the client: the peer, or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For entry that is not itself a
// trusted proxy. Entries a client wrote itself sit further left and are
// never believed.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = addr.Unmap()
		if !s.trusted(addr) {
			return addr.String()
		}
		peer = addr
	}
	return peer.String()
}

func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

type responseWriterKey struct{}

// cookieJar sets the session cookie on the HTTP response of the request in
// ctx; it implements graph.SessionCookies.
type cookieJar struct{ secure bool }

func (j cookieJar) Set(ctx context.Context, token string, expires time.Time) {
	if w, ok := ctx.Value(responseWriterKey{}).(http.ResponseWriter); ok {
		http.SetCookie(w, &http.Cookie{
			Name: sessionCookie, Value: token, Path: "/", Expires: expires,
			HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
		})
	}
}

func (j cookieJar) Clear(ctx context.Context) {
	if w, ok := ctx.Value(responseWriterKey{}).(http.ResponseWriter); ok {
		http.SetCookie(w, &http.Cookie{
			Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
		})
	}
}

// wsInit authenticates a WebSocket from its connection_init payload
// ({"token": "…"} or {"Authorization": "Bearer …"}; a session token or an
// API key), falling back to what the
// upgrade request carried (cookie or header). A token that does not work
// refuses the connection with close code 4401 (4403 for a suspended account).
// When the viewer's session stops working later, its operations report
// that and then ended is called, to close the socket (see watchSessionThen);
// the socket calls stop when it closes.
func (s *Server) wsInit(ctx context.Context, payload transport.InitPayload, ended func()) (_ context.Context, stop func(), _ error) {
	token := payload.GetString("token")
	if token == "" {
		if scheme, t, ok := strings.Cut(payload.Authorization(), " "); ok && strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(t)
		}
	}
	if token != "" {
		v, err := s.authenticateToken(ctx, token)
		if err != nil {
			return ctx, nil, err
		}
		ctx = account.WithAuth(ctx, v, nil)
	}
	return ctx, s.watchSessionThen(ctx, ended), nil
}

// watchSession returns ctx, ended as soon as the viewer's session (or API
// key) stops working, so that long-lived subscriptions do not outlive it: at once when
// a revocation's doorbell rings (sign-out, revocation, password change or
// reset, suspension), and within SESSION_RECHECK_INTERVAL for a session that
// expires or a doorbell that was lost. Before ctx ends, the connection's
// sessionEnd learns why, so that its operations report it (see sessionEnd).
// Anonymous contexts, and those of connections without a sessionEnd, are
// returned as they are.
func (s *Server) watchSession(ctx context.Context) context.Context {
	if v, _ := account.Optional(ctx); v == nil || sessionEndFrom(ctx) == nil {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(ctx, s.watchSessionThen(ctx, cancel))
	return ctx
}

// watchSessionThen is watchSession for a connection that ends itself: when
// the session stops working, its sessionEnd learns why, its operations
// report it, and then ended is called. The watch lasts until stop is
// called (a no-op for a connection nothing watches): a WebSocket calls it
// when it closes, and so holds no context callback for it.
func (s *Server) watchSessionThen(ctx context.Context, ended func()) (stop func()) {
	v, _ := account.Optional(ctx)
	end := sessionEndFrom(ctx)
	if v == nil || end == nil {
		return func() {}
	}
	return s.sessions.join(v, end, ended)
}

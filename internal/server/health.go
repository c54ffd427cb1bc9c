package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// healthz answers 200 while the process is alive.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz answers 200 when the database answers and every migration is
// applied, so that a load balancer sends traffic only to replicas that can
// serve it; 503 with the reason otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		s.log.WarnContext(r.Context(), "readiness: database unreachable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "database unreachable"})
		return
	}
	pending, err := s.migrator.Pending(ctx)
	if err != nil {
		s.log.WarnContext(r.Context(), "readiness: migration status unknown", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "migration status unknown"})
		return
	}
	if len(pending) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "migrations pending: " + strings.Join(pending, ", ")})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "version": s.version})
}

// index lists, at /api, what this address serves to programs: GraphiQL and
// /metrics only when they are served here. Browsers get the editor at /.
func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	links := map[string]any{
		"service": "FastImage API",
		"version": s.version,
		"editor":  "/",
		"graphql": "/graphql",
		"health":  "/healthz",
		"ready":   "/readyz",
	}
	if !s.cfg.DisableGraphiQL {
		links["graphiql"] = "/graphiql"
	}
	if !s.cfg.DisableIntrospection {
		links["schema"] = SchemaPath
	}
	if s.cfg.MetricsAddr == "" {
		links["metrics"] = "/metrics"
	}
	writeJSON(w, http.StatusOK, links)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

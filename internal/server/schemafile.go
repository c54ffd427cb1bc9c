package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/fastimage/api/graph"
	"github.com/fastimage/api/internal/sdl"
)

// SchemaPath is where the published schema is served, as SDL.
const SchemaPath = "/graphql/schema.graphql"

// schemaFileHandler serves the schema as SDL with descriptions and
// @deprecated reasons, the same text `make schema-update` commits, for
// partners' code generators. The text only changes with a deployment, so
// it carries an ETag for revalidation. With INTROSPECTION=false it is not
// served either: that setting is the decision to keep the schema private.
func (s *Server) schemaFileHandler() http.Handler {
	if s.cfg.DisableIntrospection {
		return http.HandlerFunc(notFound)
	}
	text := []byte(sdl.Print(graph.NewExecutableSchema(graph.Config{}).Schema()))
	sum := sha256.Sum256(text)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("ETag", etag)
		h.Set("Cache-Control", "public, max-age=300")
		// Public text: tools on any origin may fetch it.
		h.Set("Access-Control-Allow-Origin", "*")
		// ServeContent answers If-None-Match with 304, HEAD and ranges.
		http.ServeContent(w, r, "schema.graphql", time.Time{}, bytes.NewReader(text))
	})
}

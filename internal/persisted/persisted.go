// Package persisted runs GraphQL operations known by the sha256 hash of
// their text: automatic persisted queries (the Apollo APQ extension, a hash
// first and the full query on a miss) kept in a bounded cache, and an
// allow-list mode in which only the operations of a manifest loaded at
// start may run.
package persisted

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fastimage/api/internal/apperr"
)

// Manifest is the set of registered operations, by the hex sha256 of
// their text.
type Manifest struct {
	byHash map[string]string
}

// Len is the number of registered operations.
func (m *Manifest) Len() int {
	if m == nil {
		return 0
	}
	return len(m.byHash)
}

func (m *Manifest) lookup(hash string) (string, bool) {
	if m == nil {
		return "", false
	}
	q, ok := m.byHash[hash]
	return q, ok
}

// apolloManifest is the format Apollo's persisted-query manifest generator
// writes; the other accepted format is a plain {"<sha256>": "<query>"}.
type apolloManifest struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	Operations []struct {
		ID   string `json:"id"`
		Body string `json:"body"`
		Name string `json:"name"`
	} `json:"operations"`
}

const apolloFormat = "apollo-persisted-query-manifest"

// LoadManifest reads a manifest file and checks every operation in it:
// its key must be the sha256 of its text (what clients send as
// sha256Hash), and it must be valid against schema, so that a stale
// manifest stops the start rather than failing partners one call at a
// time. The error lists every problem found.
func LoadManifest(path string, schema *ast.Schema) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("persisted-query manifest: %w", err)
	}
	return ParseManifest(b, schema)
}

// ParseManifest is LoadManifest on the file's content.
func ParseManifest(b []byte, schema *ast.Schema) (*Manifest, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf(`persisted-query manifest is not a JSON object ({"<sha256>": "<query>"} or Apollo's %s): %w`, apolloFormat, err)
	}
	type entry struct{ key, name, body string }
	var entries []entry
	if _, ok := top["format"]; ok {
		var am apolloManifest
		if err := json.Unmarshal(b, &am); err != nil {
			return nil, fmt.Errorf("persisted-query manifest in Apollo's format: %w", err)
		}
		if am.Format != apolloFormat || am.Version != 1 {
			return nil, fmt.Errorf("persisted-query manifest has format %q version %d; this server reads %q version 1", am.Format, am.Version, apolloFormat)
		}
		for _, op := range am.Operations {
			entries = append(entries, entry{op.ID, op.Name, op.Body})
		}
	} else {
		for k, raw := range top {
			var body string
			if err := json.Unmarshal(raw, &body); err != nil {
				return nil, fmt.Errorf("persisted-query manifest entry %q is not a string holding the query", k)
			}
			entries = append(entries, entry{key: k, body: body})
		}
	}
	m := &Manifest{byHash: make(map[string]string, len(entries))}
	var problems []string
	for _, e := range entries {
		label := e.key
		if e.name != "" {
			label += " (" + e.name + ")"
		}
		key := strings.ToLower(e.key)
		if key != Hash(e.body) {
			problems = append(problems, fmt.Sprintf("%s: the key is not the sha256 of the query (that is %s)", label, Hash(e.body)))
			continue
		}
		if _, errs := gqlparser.LoadQuery(schema, e.body); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s: not valid against the schema: %s", label, errs[0].Message))
			continue
		}
		m.byHash[key] = e.body
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New("persisted-query manifest: " + strings.Join(problems, "; "))
	}
	return m, nil
}

// Hash is the hex sha256 of a query's text, as APQ clients compute it.
func Hash(query string) string {
	b := sha256.Sum256([]byte(query))
	return hex.EncodeToString(b[:])
}

// Queries is the gqlgen extension that turns a persisted-query hash into
// the query to run, for every transport (POST, GET, multipart, SSE and
// WebSocket all read extensions.persistedQuery into the same parameters).
type Queries struct {
	manifest *Manifest
	// only refuses every operation not in the manifest, and APQ
	// registrations.
	only  bool
	cache graphql.Cache[string]
}

// New returns the extension. In allow-list mode (only) just the manifest's
// operations run; otherwise clients register queries by APQ into an LRU
// cache of cacheSize entries (each at most maxCachedQueryBytes), beside
// those of the manifest (which may be nil).
func New(manifest *Manifest, only bool, cacheSize int) *Queries {
	q := &Queries{manifest: manifest, only: only}
	if !only {
		q.cache = lru.New[string](cacheSize)
	}
	return q
}

var _ interface {
	graphql.OperationParameterMutator
	graphql.HandlerExtension
} = (*Queries)(nil)

func (*Queries) ExtensionName() string { return "PersistedQueries" }

func (*Queries) Validate(graphql.ExecutableSchema) error { return nil }

// The APQ error of a hash the server does not know. Apollo's iOS and
// Kotlin clients recognise it by this exact message (the web client by
// the code), so it cannot be a sentence.
const notFoundMessage = "PersistedQueryNotFound"

// MutateOperationParameters fills in the query of a request that sends a
// hash, registers one that sends both (hash verified), and in allow-list
// mode refuses everything not in the manifest. Returns
// PERSISTED_QUERY_NOT_FOUND for an unknown hash (send the full query),
// PERSISTED_QUERY_REQUIRED in allow-list mode for an operation not
// registered, and BAD_REQUEST for a malformed extension or a hash that is
// not the query's.
func (q *Queries) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	ext, present := p.Extensions["persistedQuery"]
	if !present || ext == nil {
		if !q.only {
			return nil
		}
		if _, ok := q.manifest.lookup(Hash(p.Query)); ok {
			return nil
		}
		return fail(apperr.Errorf(apperr.PersistedQueryRequired,
			"This server runs only the operations registered in its persisted-query manifest, and this query is not one of them. Send a registered operation (by its sha256Hash in extensions.persistedQuery), or ask the operators to register this one."))
	}
	hash, problem := readExtension(ext)
	if problem != "" {
		return fail(apperr.Errorf(apperr.BadRequest, "%s", problem))
	}
	if p.Query != "" && Hash(p.Query) != hash {
		return fail(apperr.Errorf(apperr.BadRequest,
			"extensions.persistedQuery.sha256Hash is not the sha256 of the query sent with it (that is %s); hash the exact query text, as UTF-8, and send its lowercase hex digest.", Hash(p.Query)))
	}
	if registered, ok := q.manifest.lookup(hash); ok {
		p.Query = registered
		return nil
	}
	if q.only {
		return fail(apperr.Errorf(apperr.PersistedQueryRequired,
			"This server runs only the operations registered in its persisted-query manifest, and %s is not one of them; automatic registration is turned off here. Ask the operators to register the operation.", hash))
	}
	if p.Query == "" {
		cached, ok := q.cache.Get(ctx, hash)
		if !ok {
			return fail(apperr.Errorf(apperr.PersistedQueryNotFound, notFoundMessage))
		}
		p.Query = cached
		return nil
	}
	if len(p.Query) <= maxCachedQueryBytes {
		q.cache.Add(ctx, hash, p.Query)
	}
	return nil
}

// maxCachedQueryBytes bounds the memory of the cache to its size times
// this, since a registration is kept before the query is even parsed. A
// longer query still runs; its client just has to send it in full each
// time (an APQ client does so on the miss).
const maxCachedQueryBytes = 32 << 10

// readExtension returns the hash of extensions.persistedQuery, or what is
// wrong with it.
func readExtension(ext any) (hash, problem string) {
	m, ok := ext.(map[string]any)
	if !ok {
		return "", `extensions.persistedQuery must be an object: {"version": 1, "sha256Hash": "<hex sha256 of the query>"}.`
	}
	if v := fmt.Sprint(m["version"]); v != "1" {
		if m["version"] == nil {
			v = "missing"
		}
		return "", fmt.Sprintf("extensions.persistedQuery.version is %s; this server speaks version 1 of automatic persisted queries.", v)
	}
	h, _ := m["sha256Hash"].(string)
	h = strings.ToLower(h)
	if len(h) != sha256.Size*2 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", "extensions.persistedQuery.sha256Hash must be the 64 hexadecimal digits of the query's sha256."
	}
	return h, ""
}

// fail carries the code in the error itself, besides err for the
// presenter: gqlgen's WebSocket transport sends errors raised before
// execution without presenting them.
func fail(err *apperr.Error) *gqlerror.Error {
	return &gqlerror.Error{Message: err.Message, Err: err, Extensions: map[string]any{"code": string(err.Code)}}
}

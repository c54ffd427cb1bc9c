// Package legal keeps the privacy policy and the terms of service by
// version, and who accepted which. The versions come from the settings (a
// built-in list, or LEGAL_DOCUMENTS_FILE) and are published into
// legal_documents at start. The version of a kind in effect is the one with
// the latest effective date that has passed; a version dated later is
// announced, and takes over on its date.
//
// Signing up accepts the versions in effect (AcceptCurrent, in the sign-up
// transaction). When a new version takes effect, it is pending for every
// user until they accept it (Pending, Accept): clients show it at the next
// sign-in.
package legal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/clock"
)

// Kind is which document.
type Kind string

// The kinds of legal documents.
const (
	PrivacyPolicy Kind = "privacy_policy"
	Terms         Kind = "terms"
)

// Kinds lists every kind, in the order to show them.
var Kinds = []Kind{PrivacyPolicy, Terms}

// Document is one version of a legal document.
type Document struct {
	bun.BaseModel `bun:"table:legal_documents,alias:doc"`

	Kind        Kind      `bun:"kind,pk" json:"kind"`
	Version     string    `bun:"version,pk" json:"version"`
	EffectiveAt time.Time `bun:"effective_at" json:"effectiveAt"`
	// URL is where the text of this version is published.
	URL       string    `bun:"url" json:"url"`
	CreatedAt time.Time `bun:"created_at,nullzero,default:now()" json:"-"`
	// InEffect is set by the reads of this package: true for the version
	// of its kind in effect now, false for one announced for later (or
	// replaced).
	InEffect bool `bun:"-" json:"-"`
}

// Version names one version of one kind.
type Version struct {
	Kind    Kind
	Version string
}

// maxVersionBytes bounds a version's name; MaxAccept bounds the versions
// one Accept may name.
const (
	maxVersionBytes = 50
	MaxAccept       = 10
)

// BuiltIn returns the versions served when no LEGAL_DOCUMENTS_FILE is set:
// the privacy policy and terms the service launched with, published at
// /privacy and /terms of the public URL.
func BuiltIn(publicURL *url.URL) []Document {
	at := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	base := ""
	if publicURL != nil { // else paths on whatever site serves the API
		base = strings.TrimRight(publicURL.String(), "/")
	}
	return []Document{
		{Kind: PrivacyPolicy, Version: "2026-11-27", EffectiveAt: at, URL: base + "/privacy"},
		{Kind: Terms, Version: "2026-11-27", EffectiveAt: at, URL: base + "/terms"},
	}
}

// LoadFile reads a JSON list of documents such as
//
//	[{"kind": "privacy_policy", "version": "2027-01-01",
//	  "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://fastimage.art/privacy"}]
//
// and checks it (see Check).
func LoadFile(path string) ([]Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Load(f)
}

// Load reads documents as LoadFile does, from r.
func Load(r io.Reader) ([]Document, error) {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	var docs []Document
	if err := dec.Decode(&docs); err != nil {
		return nil, fmt.Errorf("legal documents: %w", err)
	}
	if err := Check(docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// Check reports the first problem of docs: an unknown kind, an empty or
// overlong version, a missing effective date, a URL that is not http(s),
// or a version listed twice.
func Check(docs []Document) error {
	seen := map[Version]bool{}
	for i, d := range docs {
		where := fmt.Sprintf("legal document %d (%s %q)", i+1, d.Kind, d.Version)
		switch {
		case !slices.Contains(Kinds, d.Kind):
			return fmt.Errorf("%s: kind must be privacy_policy or terms", where)
		case d.Version == "" || len(d.Version) > maxVersionBytes || strings.ContainsFunc(d.Version, unicode.IsControl):
			return fmt.Errorf("%s: version must be 1 to %d characters without control characters", where, maxVersionBytes)
		case d.EffectiveAt.IsZero():
			return fmt.Errorf("%s: effectiveAt is required", where)
		case seen[Version{d.Kind, d.Version}]:
			return fmt.Errorf("%s: listed twice", where)
		}
		if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: url must be an http(s) URL", where)
		}
		seen[Version{d.Kind, d.Version}] = true
	}
	return nil
}

// Service serves the legal documents and records their acceptance.
type Service struct {
	db    *bun.DB
	docs  []Document
	clock clock.Clock
}

// New returns the service of the configured docs (checked with Check),
// telling the time by clk (nil: the machine's clock).
func New(db *bun.DB, docs []Document, clk clock.Clock) *Service {
	return &Service{db: db, docs: docs, clock: clock.Or(clk)}
}

// Publish stores the configured versions in legal_documents, and updates
// the date and URL of those stored already. It is safe to run again and on
// several replicas at once. Versions no longer configured stay, as users
// accepted them; to replace one, publish a newer version.
func (s *Service) Publish(ctx context.Context) (int, error) {
	if len(s.docs) == 0 {
		return 0, nil
	}
	docs := slices.Clone(s.docs)
	res, err := s.db.NewInsert().Model(&docs).
		On("CONFLICT (kind, version) DO UPDATE").
		Set("effective_at = EXCLUDED.effective_at, url = EXCLUDED.url").
		Where("doc.effective_at IS DISTINCT FROM EXCLUDED.effective_at OR doc.url IS DISTINCT FROM EXCLUDED.url").
		Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("publish legal documents: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// currentSQL selects the version of each kind in effect at ?0.
const currentSQL = `SELECT DISTINCT ON (kind) kind, version FROM legal_documents
	WHERE effective_at <= ?0 ORDER BY kind, effective_at DESC, created_at DESC`

// Documents returns the version of each kind in effect now and every version
// announced to take effect later, by kind, the one in effect first.
func (s *Service) Documents(ctx context.Context) ([]*Document, error) {
	now := s.clock.Now()
	var docs []*Document
	err := s.db.NewSelect().Model(&docs).
		Where("doc.effective_at > ? OR (doc.kind, doc.version) IN ("+currentSQL+")", now).
		OrderExpr("array_position(?::text[], doc.kind), doc.effective_at", kindsArray()).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list legal documents: %w", err)
	}
	return s.markInEffect(ctx, docs, now)
}

// markInEffect sets InEffect on docs, which bun does not scan (the field is
// not a column).
func (s *Service) markInEffect(ctx context.Context, docs []*Document, now time.Time) ([]*Document, error) {
	current, err := s.current(ctx, s.db, now)
	if err != nil {
		return nil, err
	}
	for i := range docs {
		docs[i].InEffect = current[Version{docs[i].Kind, docs[i].Version}]
	}
	return docs, nil
}

func (s *Service) current(ctx context.Context, idb bun.IDB, now time.Time) (map[Version]bool, error) {
	var rows []struct {
		Kind    Kind
		Version string
	}
	if err := idb.NewRaw(currentSQL, now).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("current legal documents: %w", err)
	}
	out := make(map[Version]bool, len(rows))
	for _, r := range rows {
		out[Version{r.Kind, r.Version}] = true
	}
	return out, nil
}

func kindsArray() string {
	parts := make([]string, len(Kinds))
	for i, k := range Kinds {
		parts[i] = string(k)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Pending returns the versions in effect that userID has not accepted, by
// kind. Returns FORBIDDEN unless the actor is that user or an admin.
func (s *Service) Pending(ctx context.Context, a actor.Actor, userID uuid.UUID) ([]*Document, error) {
	if err := a.ReadAccount(userID); err != nil {
		return nil, err
	}
	return s.pending(ctx, s.db, userID)
}

func (s *Service) pending(ctx context.Context, idb bun.IDB, userID uuid.UUID) ([]*Document, error) {
	now := s.clock.Now()
	var docs []*Document
	err := idb.NewSelect().Model(&docs).
		Where("(doc.kind, doc.version) IN ("+currentSQL+")", now).
		Where("NOT EXISTS (SELECT 1 FROM legal_acceptances AS a WHERE a.user_id = ? AND a.kind = doc.kind AND a.version = doc.version)", userID).
		OrderExpr("array_position(?::text[], doc.kind)", kindsArray()).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("pending legal documents: %w", err)
	}
	for i := range docs {
		docs[i].InEffect = true
	}
	return docs, nil
}

// Accept records that the actor accepted versions, which must each be a
// published version (in effect, or announced: it may be accepted ahead of
// its date). Accepting one again changes nothing. It returns the versions
// still pending after it. Returns VALIDATION.
func (s *Service) Accept(ctx context.Context, a actor.Actor, versions []Version) ([]*Document, error) {
	if err := a.RequireSession(); err != nil {
		return nil, err
	}
	if len(versions) == 0 || len(versions) > MaxAccept {
		return nil, apperr.Errorf(apperr.Validation, "Name 1 to %d documents to accept.", MaxAccept).With("field", "documents")
	}
	var pending []*Document
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, v := range versions {
			res, err := tx.NewRaw(`INSERT INTO legal_acceptances (user_id, kind, version)
				SELECT ?, kind, version FROM legal_documents WHERE kind = ? AND version = ?
				ON CONFLICT DO NOTHING`, a.UserID, v.Kind, v.Version).Exec(ctx)
			if err != nil {
				return fmt.Errorf("accept %s %s: %w", v.Kind, v.Version, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var known bool
				if err := tx.NewRaw("SELECT EXISTS (SELECT 1 FROM legal_documents WHERE kind = ? AND version = ?)", v.Kind, v.Version).
					Scan(ctx, &known); err != nil {
					return fmt.Errorf("find %s %s: %w", v.Kind, v.Version, err)
				}
				if !known {
					return apperr.Errorf(apperr.Validation, "There is no %s version %q: accept a version that legalDocuments lists.", strings.ReplaceAll(string(v.Kind), "_", " "), v.Version).
						With("field", "documents")
				}
			}
		}
		var err error
		pending, err = s.pending(ctx, tx, a.UserID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pending, nil
}

// AcceptCurrent records, in tx, that userID accepts the versions in effect
// at now: signing up accepts them (internal: the sign-up transaction). For
// a user that does not exist, such as uuid.Nil, the statement runs all the
// same and records nothing, so that a sign-up for a taken address takes as
// long.
func AcceptCurrent(ctx context.Context, tx bun.IDB, userID uuid.UUID, now time.Time) error {
	if _, err := tx.NewRaw(`INSERT INTO legal_acceptances (user_id, kind, version)
		SELECT u.id, cur.kind, cur.version FROM users AS u, (`+currentSQL+`) AS cur
		WHERE u.id = ?1
		ON CONFLICT DO NOTHING`, now, userID).Exec(ctx); err != nil {
		return fmt.Errorf("accept legal documents: %w", err)
	}
	return nil
}

// AcceptCurrent is the package's AcceptCurrent at the service's time.
func (s *Service) AcceptCurrent(ctx context.Context, tx bun.IDB, userID uuid.UUID) error {
	return AcceptCurrent(ctx, tx, userID, s.clock.Now())
}

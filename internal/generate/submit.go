package generate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/work"
)

// Kinds of generation.
const (
	KindGenerate = "generate"
	KindEdit     = "edit"
)

// Request asks for images: from a prompt (generate) or by editing a work.
type Request struct {
	Kind           string
	Prompt         string // the prompt, or the edit instruction
	NegativePrompt string
	// AspectRatio ("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16") or
	// Width and Height choose the size of generated images; edits keep their
	// source's size.
	AspectRatio   string
	Width, Height int
	Count         int
	Seed          *int64
	SourceWorkID  *uuid.UUID
	MaskWorkID    *uuid.UUID
	Strength      *float64
	// IdempotencyKey: the same key with the same request within 24 hours
	// returns the same generation, charged once.
	IdempotencyKey string
	// WebhookURL, when set, is POSTed the generation's end (per request,
	// like Replicate's webhook parameter). It is delivery, not content: no
	// part of the idempotency hash.
	WebhookURL string

	// randomSeed marks a seed chosen here: it is no part of what the client
	// asked for, so two submissions that left it out are the same request.
	randomSeed bool
}

var aspectRatios = map[string][2]int{
	"1:1": {1024, 1024}, "3:2": {1216, 832}, "2:3": {832, 1216}, "4:3": {1152, 896},
	"3:4": {896, 1152}, "16:9": {1344, 768}, "9:16": {768, 1344},
}

// normalize validates r and fills its defaults. An estimate may leave the
// prompt empty: the price does not depend on it, and the editor shows the
// cost before anything is typed.
// Returns VALIDATION (with the field) or NOT_FOUND for a source or mask that
// is not the user's.
func (s *Service) normalize(ctx context.Context, a actor.Actor, r *Request, estimate bool) error {
	bad := func(field, format string, args ...any) error {
		return apperr.Errorf(apperr.Validation, format, args...).With("field", field)
	}
	r.Prompt = strings.TrimSpace(r.Prompt)
	r.NegativePrompt = strings.TrimSpace(r.NegativePrompt)
	switch n := utf8.RuneCountInString(r.Prompt); {
	case n == 0 && !estimate:
		return bad("prompt", "Describe what you want in the prompt.")
	case n > 4000:
		return bad("prompt", "Keep the prompt to 4000 characters; it has %d.", n)
	}
	if utf8.RuneCountInString(r.NegativePrompt) > 2000 {
		return bad("negativePrompt", "Keep the negative prompt to 2000 characters.")
	}
	if r.Count == 0 {
		r.Count = 1
	}
	if r.Count < 1 || r.Count > 4 {
		return bad("count", "Ask for 1 to 4 images.")
	}
	if r.Seed == nil {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed := int64(binary.BigEndian.Uint64(b[:]) >> 1)
		r.Seed, r.randomSeed = &seed, true
	}
	if r.Strength == nil {
		st := 0.6
		r.Strength = &st
	}
	if *r.Strength < 0 || *r.Strength > 1 {
		return bad("strength", "Strength goes from 0 (subtle) to 1 (strong).")
	}
	if r.WebhookURL = strings.TrimSpace(r.WebhookURL); r.WebhookURL != "" {
		if s.cfg.CheckWebhookURL == nil {
			return bad("webhookUrl", "Webhooks are not available on this server.")
		}
		if err := s.cfg.CheckWebhookURL(ctx, "webhookUrl", r.WebhookURL); err != nil {
			return err
		}
	}
	if len(r.IdempotencyKey) > 200 {
		return bad("idempotencyKey", "Use an idempotency key of at most 200 characters.")
	}
	switch r.Kind {
	case KindGenerate:
		if r.AspectRatio != "" {
			size, ok := aspectRatios[r.AspectRatio]
			if !ok {
				return bad("aspectRatio", "Use one of the aspect ratios 1:1, 3:2, 2:3, 4:3, 3:4, 16:9, 9:16.")
			}
			if r.Width != 0 || r.Height != 0 {
				return bad("aspectRatio", "Give an aspect ratio or a width and height, not both.")
			}
			r.Width, r.Height = size[0], size[1]
		}
		if r.Width == 0 && r.Height == 0 {
			r.Width, r.Height = 1024, 1024
		}
		if r.Width < 64 || r.Width > 2048 || r.Height < 64 || r.Height > 2048 {
			return bad("width", "Width and height go from 64 to 2048 pixels.")
		}
	case KindEdit:
		if r.SourceWorkID == nil {
			return bad("sourceWorkId", "Pick the work to edit.")
		}
		src, err := s.gallery.ForGeneration(ctx, a, *r.SourceWorkID)
		if err != nil {
			return err
		}
		if r.MaskWorkID != nil {
			if _, err := s.gallery.ForGeneration(ctx, a, *r.MaskWorkID); err != nil {
				return err
			}
		}
		imgs, err := s.gallery.ImagesForGeneration(ctx, a, []uuid.UUID{src.ID})
		if err != nil {
			return err
		}
		if len(imgs[src.ID]) == 0 {
			return bad("sourceWorkId", "That work has no image to edit yet.")
		}
		first := imgs[src.ID][0]
		r.Width, r.Height = min(max(first.Width, 64), 2048), min(max(first.Height, 64), 2048)
	default:
		return bad("kind", "Unknown kind of generation %q.", r.Kind)
	}
	return nil
}

// hash identifies a request's content, to tell a retried submission from a
// different one that reuses its idempotency key.
func (r *Request) hash() string {
	seed := *r.Seed
	if r.randomSeed {
		seed = -1
	}
	b, _ := json.Marshal(struct {
		Kind, Prompt, Negative string
		W, H, N                int
		Seed                   int64
		Source, Mask           *uuid.UUID
		Strength               float64
	}{r.Kind, r.Prompt, r.NegativePrompt, r.Width, r.Height, r.Count, seed, r.SourceWorkID, r.MaskWorkID, *r.Strength})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Estimate returns what a request would cost, in credits.
// Returns VALIDATION or NOT_FOUND like Submit.
func (s *Service) Estimate(ctx context.Context, a actor.Actor, r Request) (perImage, total, width, height int, err error) {
	if err := a.RequireScope(actor.ScopeGenerate); err != nil {
		return 0, 0, 0, 0, err
	}
	if err := s.normalize(ctx, a, &r, true); err != nil {
		return 0, 0, 0, 0, err
	}
	perImage, err = price(ctx, s.db, r.Kind, r.Width*r.Height)
	return perImage, perImage * r.Count, r.Width, r.Height, err
}

func price(ctx context.Context, idb bun.IDB, kind string, pixels int) (int, error) {
	var p int
	err := idb.NewRaw("SELECT credits_per_image FROM generation_prices WHERE kind = ? AND max_pixels >= ? ORDER BY max_pixels LIMIT 1", kind, pixels).Scan(ctx, &p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, apperr.Errorf(apperr.Validation, "No price is set for images of %d pixels.", pixels)
	}
	if err != nil {
		return 0, fmt.Errorf("read price: %w", err)
	}
	return p, nil
}

var errDuplicate = errors.New("generate: idempotency key taken by a concurrent submission")

// Submit queues a generation with its work (pending) and holds its credits,
// all in one transaction, and wakes a worker.
// Returns EMAIL_NOT_VERIFIED, VALIDATION, NOT_FOUND, INSUFFICIENT_CREDITS,
// QUEUE_FULL or IDEMPOTENCY_KEY_REUSED.
func (s *Service) Submit(ctx context.Context, a actor.Actor, r Request) (*Generation, error) {
	if err := a.RequireScope(actor.ScopeGenerate); err != nil {
		return nil, err
	}
	if err := a.RequireVerified(); err != nil {
		return nil, err
	}
	if err := s.normalize(ctx, a, &r, false); err != nil {
		return nil, err
	}
	hash := r.hash()
	if g, err := s.byKey(ctx, a.UserID, r.IdempotencyKey, hash); g != nil || err != nil {
		return g, err
	}
	var g *Generation
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		g, err = s.submitTx(ctx, tx, a.UserID, r, hash)
		return err
	})
	if errors.Is(err, errDuplicate) {
		return s.byKey(ctx, a.UserID, r.IdempotencyKey, hash)
	}
	return g, err
}

// byKey returns the generation an idempotency key already made (nil when
// none), or IDEMPOTENCY_KEY_REUSED when it was made from another request.
func (s *Service) byKey(ctx context.Context, userID uuid.UUID, key, hash string) (*Generation, error) {
	if key == "" {
		return nil, nil
	}
	var g Generation
	err := s.db.NewSelect().Model(&g).Where("user_id = ? AND idempotency_key = ?", userID, key).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find by idempotency key: %w", err)
	}
	if g.RequestHash != hash {
		return nil, apperr.Errorf(IdempotencyKeyReused, "This idempotency key was already used for a different request; use a new key for a new request.")
	}
	return &g, nil
}

func (s *Service) submitTx(ctx context.Context, tx bun.Tx, userID uuid.UUID, r Request, hash string) (*Generation, error) {
	var queued int
	if err := tx.NewRaw("SELECT count(*) FROM generations WHERE status = 'queued'").Scan(ctx, &queued); err != nil {
		return nil, err
	}
	if queued >= s.cfg.QueueCap {
		return nil, apperr.Errorf(QueueFull, "We are very busy right now. Try again in a minute.").With("retryAfter", 60)
	}
	perImage, err := price(ctx, tx, r.Kind, r.Width*r.Height)
	if err != nil {
		return nil, err
	}
	workKind := work.KindGeneration
	if r.Kind == KindEdit {
		workKind = work.KindEdit
	}
	prompt := r.Prompt
	w := &work.Work{UserID: userID, Kind: workKind, Title: title(r.Prompt), Prompt: &prompt, Status: work.StatusQueued, SourceWorkID: r.SourceWorkID}
	if err := work.CreateTx(ctx, tx, w); err != nil {
		return nil, err
	}
	g := &Generation{
		ID: uuid.Must(uuid.NewV7()), UserID: userID, WorkID: w.ID, Kind: r.Kind, Prompt: r.Prompt, NegativePrompt: r.NegativePrompt,
		Width: r.Width, Height: r.Height, Count: r.Count, Seed: *r.Seed, Strength: *r.Strength,
		SourceWorkID: r.SourceWorkID, MaskWorkID: r.MaskWorkID, Provider: s.provider.Name(), Status: StatusQueued,
		CreditsPerImage: perImage, MaxAttempts: s.cfg.MaxAttempts, RequestHash: hash,
	}
	if r.IdempotencyKey != "" {
		g.IdempotencyKey = &r.IdempotencyKey
	}
	if r.WebhookURL != "" {
		g.WebhookURL = &r.WebhookURL
	}
	res, err := tx.NewInsert().Model(g).
		On("CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING").
		Returning("*").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert generation: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, errDuplicate
	}
	hold, err := credit.HoldTx(ctx, tx, credit.HoldRequest{
		UserID: userID, Amount: int64(perImage * r.Count), TTL: s.cfg.HoldTTL,
		Ref: credit.Ref{Type: "Generation", ID: g.ID.String()}, IdempotencyKey: "generation:" + g.ID.String(),
	})
	if err != nil {
		return nil, err
	}
	g.HoldID = &hold.ID
	if _, err := tx.NewUpdate().Model(g).Column("hold_id").WherePK().Exec(ctx); err != nil {
		return nil, fmt.Errorf("link hold: %w", err)
	}
	if _, err := appendEvent(ctx, tx, g.ID, Queued{Cost: perImage * r.Count}); err != nil {
		return nil, err
	}
	g.LastSeq = 1
	if err := feedStatus(ctx, tx, g, StatusQueued); err != nil {
		return nil, err
	}
	if err := events.Ring(ctx, tx, events.QueueTopic); err != nil {
		return nil, err
	}
	return g, nil
}

// title makes a work's title from the start of its prompt.
func title(prompt string) string {
	if utf8.RuneCountInString(prompt) <= 80 {
		return prompt
	}
	return string([]rune(prompt)[:79]) + "…"
}

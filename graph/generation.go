package graph

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/relay"
)

// Translations between the GraphQL types of generation and the domain's.

func generateRequest(in model.GenerateImageInput) (generate.Request, error) {
	r := generate.Request{
		Kind: generate.KindGenerate, Prompt: in.Prompt, NegativePrompt: deref(in.NegativePrompt, ""),
		AspectRatio: deref(in.AspectRatio, ""), Width: deref(in.Width, 0), Height: deref(in.Height, 0),
		Count: deref(in.Count, 1), IdempotencyKey: deref(in.IdempotencyKey, ""),
	}
	var err error
	r.Seed, err = parseSeed(in.Seed)
	return r, err
}

func editRequest(in model.EditImageInput) (generate.Request, error) {
	src, err := uuidOf(in.SourceWorkID, "Work")
	if err != nil {
		return generate.Request{}, err
	}
	r := generate.Request{
		Kind: generate.KindEdit, Prompt: in.Instruction, SourceWorkID: &src, Strength: in.Strength,
		Count: deref(in.Count, 1), IdempotencyKey: deref(in.IdempotencyKey, ""),
	}
	if in.MaskWorkID != nil {
		mask, err := uuidOf(*in.MaskWorkID, "Work")
		if err != nil {
			return r, err
		}
		r.MaskWorkID = &mask
	}
	r.Seed, err = parseSeed(in.Seed)
	return r, err
}

// parseSeed reads a seed sent as a decimal string: seeds use 63 bits, more
// than a GraphQL Int holds.
func parseSeed(s *string) (*int64, error) {
	if s == nil {
		return nil, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(*s), 10, 64)
	if err != nil || n < 0 {
		return nil, apperr.Errorf(apperr.Validation, "A seed is a whole number from 0 to 9223372036854775807, sent as a string.").With("field", "seed")
	}
	return &n, nil
}

// eventModel unpacks an event's payload into the fields its kind uses.
func eventModel(e generate.Event) *model.GenerationEvent {
	var p struct {
		Fraction   *float64 `json:"fraction"`
		Step       *int     `json:"step"`
		TotalSteps *int     `json:"totalSteps"`
		Message    *string  `json:"message"`
		PreviewURL *string  `json:"previewUrl"`
		Index      *int     `json:"index"`
		URL        *string  `json:"url"`
		Code       *string  `json:"code"`
		Cost       *int     `json:"cost"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	m := &model.GenerationEvent{
		Seq: e.Seq, Kind: e.Kind, GenerationID: relay.ID("Generation", e.GenerationID.String()), CreatedAt: e.CreatedAt,
	}
	switch e.Kind {
	case generate.EventProgress:
		m.Fraction, m.Step, m.TotalSteps, m.Message, m.PreviewURL = p.Fraction, p.Step, p.TotalSteps, p.Message, p.PreviewURL
	case generate.EventOutput:
		m.OutputIndex, m.OutputURL = p.Index, p.URL
	case generate.EventFailed:
		m.ErrorCode, m.ErrorMessage = p.Code, p.Message
	case generate.EventSucceeded:
		m.Cost = p.Cost
	}
	return m
}

// feedModel unpacks one entry of a user's feed.
func feedModel(e generate.FeedEvent) *model.ViewerEvent {
	m := &model.ViewerEvent{Seq: int(e.Seq), Kind: e.Kind, CreatedAt: e.CreatedAt}
	switch e.Kind {
	case "GENERATION":
		var p struct {
			GenerationID string `json:"generationId"`
			Status       string `json:"status"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		if id, err := uuid.Parse(p.GenerationID); err == nil {
			gid := relay.ID("Generation", id.String())
			m.GenerationID = &gid
		}
		st := model.GenerationStatus(strings.ToUpper(p.Status))
		m.Status = &st
	case "CREDITS":
		var b credit.Balance
		var p struct{ Balance, Held, Available int64 }
		_ = json.Unmarshal(e.Payload, &p)
		b.Balance, b.Held, b.Available = p.Balance, p.Held, p.Available
		m.Credits = &b
	}
	return m
}

// submitted turns a service's answer about a generation into the payload.
func (r *Resolver) submitted(ctx context.Context, a actor.Actor, g *generate.Generation, err error) (*model.GenerationPayload, error) {
	if err != nil {
		return nil, err
	}
	w, err := r.Gallery.Get(ctx, a, g.WorkID)
	if err != nil {
		return nil, err
	}
	return &model.GenerationPayload{Generation: g, Work: w}, nil
}

func (r *Resolver) estimate(ctx context.Context, a actor.Actor, req generate.Request) (*model.Estimate, error) {
	per, total, w, h, err := r.Jobs.Estimate(ctx, a, req)
	if err != nil {
		return nil, err
	}
	return &model.Estimate{CreditsPerImage: per, TotalCredits: total, Width: w, Height: h}, nil
}

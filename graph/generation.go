package graph

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/billing"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/generate"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/relay"
	"github.com/fastimage/api/internal/work"
)

// Translations between the GraphQL types of generation and the domain's.

func generateRequest(in model.GenerateImageInput) (generate.Request, error) {
	r := generate.Request{
		Kind: generate.KindGenerate, Prompt: in.Prompt, NegativePrompt: deref(in.NegativePrompt, ""),
		AspectRatio: deref(in.AspectRatio, ""), Width: deref(in.Width, 0), Height: deref(in.Height, 0),
		Count: deref(in.Count, 1), IdempotencyKey: deref(in.IdempotencyKey, ""), WebhookURL: deref(in.WebhookURL, ""),
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
		Count: deref(in.Count, 1), IdempotencyKey: deref(in.IdempotencyKey, ""), WebhookURL: deref(in.WebhookURL, ""),
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

// eventModel turns a generation event into its GraphQL shape. URLs are
// signed now, at delivery, so a replay long after the event was written
// still gets working links; previews of a generation that has ended are
// gone, and their URL is null.
func (r *Resolver) eventModel(ctx context.Context, e generate.Event) (*model.GenerationEvent, error) {
	data, err := e.Decode()
	if err != nil {
		return nil, err
	}
	m := &model.GenerationEvent{
		Seq: e.Seq, Kind: e.Kind, GenerationID: relay.ID("Generation", e.GenerationID.String()), CreatedAt: e.CreatedAt,
	}
	expires := r.Gallery.URLExpiry()
	switch d := data.(type) {
	case generate.Started:
		m.Attempt = &d.Attempt
	case generate.Progress:
		m.Fraction, m.Step, m.TotalSteps = &d.Fraction, &d.Step, &d.TotalSteps
		if d.Message != "" {
			m.Message = &d.Message
		}
		if d.PreviewKey != "" && !e.GenerationEnded {
			url, err := r.Gallery.KeyURL(ctx, d.PreviewKey, expires)
			if err != nil {
				return nil, err
			}
			m.PreviewURL = &url
		}
	case generate.Output:
		m.OutputIndex = &d.Index
		if d.Key != "" { // none when the image was purged before events kept keys
			url, err := r.Gallery.KeyURL(ctx, d.Key, expires)
			if err != nil {
				return nil, err
			}
			m.OutputURL = &url
		}
	case generate.Failed:
		m.ErrorCode, m.ErrorMessage = &d.Code, &d.Message
	case generate.Succeeded:
		cost := int(d.Cost)
		m.Cost = &cost
	}
	return m, nil
}

// feedModel turns an entry of a user's feed into its GraphQL shape.
func feedModel(e feed.Entry) (*model.ViewerEvent, error) {
	data, err := e.Decode()
	if err != nil {
		return nil, err
	}
	m := &model.ViewerEvent{Seq: int(e.Seq), Kind: e.Kind, CreatedAt: e.CreatedAt}
	switch d := data.(type) {
	case feed.GenerationChanged:
		gid, wid := relay.ID("Generation", d.GenerationID.String()), relay.ID("Work", d.WorkID.String())
		st := work.Status(d.Status)
		m.GenerationID, m.WorkID, m.Status = &gid, &wid, &st
	case feed.CreditsChanged:
		m.Credits = &credit.Balance{Balance: d.Balance, Held: d.Held, Available: d.Available}
		if d.Cause != "" { // entries written before causes were kept have none
			cause := model.CreditChangeCause(d.Cause)
			if !cause.IsValid() {
				return nil, fmt.Errorf("feed entry %d: unknown credit change cause %q", e.Seq, d.Cause)
			}
			m.Cause = &cause
		}
		switch d.RefType {
		case "Generation":
			gid := relay.ID("Generation", d.RefID)
			m.GenerationID = &gid
		case "Purchase", credit.RefFreeze:
			pid := relay.ID("Purchase", d.RefID)
			m.PurchaseID = &pid
		}
	case feed.PurchaseChanged:
		pid, st := relay.ID("Purchase", d.PurchaseID.String()), billing.Status(d.Status)
		m.PurchaseID, m.PurchaseStatus = &pid, &st
	case feed.PrivacyRequestChanged:
		rid, st := relay.ID("PrivacyRequest", d.RequestID.String()), privacy.Status(d.Status)
		m.PrivacyRequestID, m.PrivacyRequestStatus, m.Progress = &rid, &st, &d.Progress
	case feed.SubscriptionChanged:
		sid, st := relay.ID("BillingSubscription", d.SubscriptionID.String()), billing.SubscriptionStatus(d.Status)
		m.SubscriptionID, m.SubscriptionStatus, m.PlanCode, m.CancelAtPeriodEnd = &sid, &st, &d.PlanCode, &d.CancelAtPeriodEnd
	}
	return m, nil
}

// submit queues a generation of req for the signed-in actor.
func (r *Resolver) submit(ctx context.Context, req generate.Request, err error) (*model.GenerationPayload, error) {
	if err != nil {
		return nil, err
	}
	a, err := account.Actor(ctx)
	if err != nil {
		return nil, err
	}
	g, err := r.Jobs.Submit(ctx, a, req)
	return r.submitted(ctx, a, g, err)
}

// submitted turns a service's answer about a generation into the payload.
func (r *Resolver) submitted(ctx context.Context, a actor.Actor, g *generate.Generation, err error) (*model.GenerationPayload, error) {
	if err != nil {
		return nil, err
	}
	w, err := r.Gallery.ForGeneration(ctx, a, g.WorkID)
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

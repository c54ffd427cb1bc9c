// Package provider defines what the generation queue asks of an image
// generator: one Request in, progress and finished images out. The built-in
// generator lives in provider/local and the OpenAI-compatible HTTP client in
// provider/openai.
package provider

import (
	"context"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fastimage/api/internal/apperr"
)

// The kinds of Request.
const (
	KindGenerate = "generate"
	KindEdit     = "edit"
)

// Bounds on a Request that every provider accepts. Providers may refuse more
// (an HTTP provider only knows a few sizes).
const (
	// MinSide and MaxSide bound Request.Width and Request.Height.
	MinSide = 64
	MaxSide = 2048
	// MaxCount is the most images one Request may ask for.
	MaxCount = 4
	// MaxPromptLength is the longest prompt, in characters.
	MaxPromptLength = 4000
)

// Request is one generation or edit.
type Request struct {
	Kind           string  // "generate" or "edit"
	Prompt         string  // the prompt, or the edit instruction
	NegativePrompt string  // what the image should not show
	Width, Height  int     // output size in pixels
	Count          int     // images to make, 1–4
	Seed           int64   // same prompt+seed ⇒ same images (local provider)
	Source         []byte  // edit: the source image (PNG/JPEG/WebP bytes)
	Mask           []byte  // edit, optional: PNG whose transparent (alpha=0) pixels mark where to edit
	Strength       float64 // edit: 0–1, how strongly to transform
}

// Validate checks what every provider relies on: a known Kind, a prompt of
// at most MaxPromptLength characters, Count in 1–MaxCount, for a generation
// a size within MinSide–MaxSide, and for an edit a Source, a size that is
// either zero (the provider's choice) or within bounds, and Strength in 0–1.
//
// Returns Validation.
func (r Request) Validate() error {
	switch r.Kind {
	case KindGenerate, KindEdit:
	default:
		return apperr.Errorf(apperr.Validation, "Choose whether to generate a new image or edit one.")
	}
	if strings.TrimSpace(r.Prompt) == "" {
		if r.Kind == KindEdit {
			return apperr.Errorf(apperr.Validation, "Describe the edit you want.")
		}
		return apperr.Errorf(apperr.Validation, "Describe the image you want.")
	}
	if n := utf8.RuneCountInString(r.Prompt) + utf8.RuneCountInString(r.NegativePrompt); n > MaxPromptLength {
		return apperr.Errorf(apperr.Validation, "Shorten the prompt to at most %d characters.", MaxPromptLength)
	}
	if r.Count < 1 || r.Count > MaxCount {
		return apperr.Errorf(apperr.Validation, "Ask for 1 to %d images.", MaxCount)
	}
	sizeOK := func(n int) bool { return n >= MinSide && n <= MaxSide }
	if r.Kind == KindGenerate {
		if !sizeOK(r.Width) || !sizeOK(r.Height) {
			return apperr.Errorf(apperr.Validation, "Choose a width and height between %d and %d pixels.", MinSide, MaxSide)
		}
		return nil
	}
	if len(r.Source) == 0 {
		return apperr.Errorf(apperr.Validation, "Choose the image to edit.")
	}
	if (r.Width != 0 || r.Height != 0) && (!sizeOK(r.Width) || !sizeOK(r.Height)) {
		return apperr.Errorf(apperr.Validation, "Choose a width and height between %d and %d pixels.", MinSide, MaxSide)
	}
	if math.IsNaN(r.Strength) || r.Strength < 0 || r.Strength > 1 {
		return apperr.Errorf(apperr.Validation, "Choose an edit strength between 0 and 1.")
	}
	return nil
}

// Progress is one step of work in progress.
type Progress struct {
	Step, Total int    // 1-based step of Total
	Message     string // e.g. "Rendering", or "Provider busy, retrying (attempt 2 of 4)"
	Preview     []byte // optional small preview image (≤ 256 px long side), encoded
	PreviewType string // its content type, "image/jpeg" or "image/png"
}

// Output is one finished image.
type Output struct {
	Index         int    // 0-based among Count
	Data          []byte // encoded image
	ContentType   string // "image/png", "image/jpeg" or "image/webp"
	Width, Height int
}

// Provider makes images. Generate blocks until done; it calls report for
// progress and emit for each finished image (in order), from the calling
// goroutine only. It stops promptly when ctx is cancelled, returning
// ctx.Err(). A failure the user should see is an *apperr.Error with one of
// the codes below.
type Provider interface {
	// Name identifies the provider in logs and in the generations table.
	Name() string
	// Generate makes req.Count images. An error from emit stops it and is
	// returned as is.
	Generate(ctx context.Context, req Request, report func(Progress), emit func(Output) error) error
}

// The codes of the failures a Provider reports to users, beside
// apperr.Validation for a Request that Validate refuses.
const (
	ContentRejected     apperr.Code = "CONTENT_REJECTED"     // the provider refused the prompt or image
	ProviderUnavailable apperr.Code = "PROVIDER_UNAVAILABLE" // gave up after retries (429/5xx/network)
	ProviderTimeout     apperr.Code = "PROVIDER_TIMEOUT"     // the provider took too long
	InvalidRequest      apperr.Code = "INVALID_REQUEST"      // the provider said the request is malformed
)

// Sleep waits for d or until ctx is done, whichever comes first, and returns
// ctx's error in the second case: how providers pause between steps and
// retries without outliving a cancel.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

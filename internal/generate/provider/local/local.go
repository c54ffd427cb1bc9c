// Package local is the built-in image generator. It paints real, varied
// pictures from a prompt and a seed — landscapes, seas, night skies, auroras,
// lights, flowing waves and geometric abstracts, in palettes the prompt's
// words choose — and really edits uploaded images, all on the CPU, with no
// network and no model. It is the default provider for development and
// tests, and shows the whole product working before any AI provider is
// configured.
//
// Everything is deterministic: the same prompt, negative prompt, seed and
// index give the same picture, byte for byte, at a given size.
package local

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/imaging"
)

// Defaults for Config's zero values.
const (
	DefaultSteps     = 8
	DefaultStepDelay = 250 * time.Millisecond
)

// MinEffect is how much of its effect an edit of Strength 0 applies: users
// are told 0 is subtle, not nothing, and an edit that changes nothing would
// be charged for nothing.
const MinEffect = 0.1

// Config configures New.
type Config struct {
	// Steps is how many progress reports a request makes; zero means
	// DefaultSteps.
	Steps int
	// StepDelay is the pause between steps, so that the progress a user
	// watches looks like the work of a real model; zero means
	// DefaultStepDelay and a negative value means no pause.
	StepDelay time.Duration
	// MaxDecodeBytes is the most memory decoding an edit's source or mask
	// may take (imaging.Limits); zero means imaging.DefaultMaxDecodeBytes.
	MaxDecodeBytes int64
}

// Local is the built-in provider. It is safe for concurrent use.
type Local struct {
	steps  int
	delay  time.Duration
	limits imaging.Limits
}

var _ provider.Provider = (*Local)(nil)

// New returns a Local configured by cfg.
func New(cfg Config) *Local {
	l := &Local{steps: cfg.Steps, delay: cfg.StepDelay, limits: imaging.Limits{MaxDecodeBytes: cfg.MaxDecodeBytes}}
	if l.steps <= 0 {
		l.steps = DefaultSteps
	}
	switch {
	case l.delay == 0:
		l.delay = DefaultStepDelay
	case l.delay < 0:
		l.delay = 0
	}
	return l
}

// Name returns "local".
func (l *Local) Name() string { return "local" }

// Generate makes req.Count images. It reports Steps progress steps, StepDelay
// apart, each with a JPEG preview of the first image (coarse and noisy at
// first, sharpening step by step; the last is the finished picture), then
// renders each image at full size and emits it as a PNG.
//
// A generation is Width × Height. An edit keeps the size of its Source and
// ignores Width and Height; it applies MinEffect + (1 − MinEffect) ×
// Strength of its effect; a Mask may be any size (it is stretched over the
// source) and must have transparent pixels, which mark where to edit.
//
// Returns Validation for a request Request.Validate refuses or an unusable
// mask, imaging.ImageTooLarge for a source or mask too costly to decode
// (Config.MaxDecodeBytes), imaging.UnsupportedMediaType or
// imaging.InvalidImage for an unusable source, ctx.Err() when ctx is done,
// and emit's error as is.
func (l *Local) Generate(ctx context.Context, req provider.Request, report func(provider.Progress), emit func(provider.Output) error) error {
	if report == nil {
		report = func(provider.Progress) {}
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Kind == provider.KindEdit {
		return l.edit(ctx, req, report, emit)
	}
	return l.generate(ctx, req, report, emit)
}

func (l *Local) generate(ctx context.Context, req provider.Request, report func(provider.Progress), emit func(provider.Output) error) error {
	first := newScene(req.Prompt, req.NegativePrompt, req.Seed, 0, req.Width, req.Height)
	pw, ph := provider.FitSize(req.Width, req.Height, provider.PreviewMaxSide)
	err := l.progress(ctx, report, generateMessage, func(step int) (image.Image, error) {
		if step == l.steps {
			return first.render(ctx, pw, ph)
		}
		return first.sketch(ctx, pw, ph, step, l.steps)
	})
	if err != nil {
		return err
	}
	for i := range req.Count {
		s := first
		if i > 0 {
			s = newScene(req.Prompt, req.NegativePrompt, req.Seed, i, req.Width, req.Height)
		}
		img, err := s.render(ctx, req.Width, req.Height)
		if err != nil {
			return err
		}
		if err := emitPNG(ctx, emit, i, img); err != nil {
			return err
		}
	}
	return nil
}

func (l *Local) edit(ctx context.Context, req provider.Request, report func(provider.Progress), emit func(provider.Output) error) error {
	src, _, err := provider.DecodeImage(req.Source, l.limits)
	if err != nil {
		return err
	}
	var m *mask
	if len(req.Mask) > 0 {
		if m, err = readMask(req.Mask, l.limits); err != nil {
			return err
		}
	}
	strength := MinEffect + (1-MinEffect)*req.Strength

	base := toNRGBA(src)
	small := toNRGBA(shrink(base, provider.PreviewMaxSide))
	first := planEdit(req.Prompt, req.NegativePrompt, req.Seed, 0)
	err = l.progress(ctx, report, editMessage, func(step int) (image.Image, error) {
		p := cloneNRGBA(small)
		if err := first.apply(ctx, p, m, strength*float64(step)/float64(l.steps)); err != nil {
			return nil, err
		}
		return p, nil
	})
	if err != nil {
		return err
	}
	for i := range req.Count {
		e := first
		if i > 0 {
			e = planEdit(req.Prompt, req.NegativePrompt, req.Seed, i)
		}
		// The last output is edited in base itself, so a single edit holds
		// one copy of the pixels, not two.
		out := base
		if i < req.Count-1 {
			out = cloneNRGBA(base)
		}
		if err := e.apply(ctx, out, m, strength); err != nil {
			return err
		}
		if err := emitPNG(ctx, emit, i, out); err != nil {
			return err
		}
	}
	return nil
}

// readMask decodes an edit mask and checks that it marks something to edit.
//
// Returns imaging.ImageTooLarge or Validation.
func readMask(data []byte, limits imaging.Limits) (*mask, error) {
	img, ct, err := provider.DecodeImage(data, limits)
	if apperr.CodeOf(err) == imaging.ImageTooLarge {
		return nil, err // its own message says what to change
	}
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Validation, "The mask must be a PNG image whose transparent pixels mark where to edit.")
	}
	if ct == imaging.JPEG {
		return nil, apperr.Errorf(apperr.Validation, "The mask must be a PNG image whose transparent pixels mark where to edit.")
	}
	m := newMask(img)
	for _, a := range m.alpha {
		if a < 255 {
			return m, nil
		}
	}
	return nil, apperr.Errorf(apperr.Validation, "The mask marks nothing to edit: paint over the part of the image to change.")
}

// progress reports l.steps steps, l.delay apart, each with the preview that
// preview makes for it.
func (l *Local) progress(ctx context.Context, report func(provider.Progress), message func(step, steps int) string, preview func(step int) (image.Image, error)) error {
	for step := 1; step <= l.steps; step++ {
		if step > 1 {
			if err := provider.Sleep(ctx, l.delay); err != nil {
				return err
			}
		}
		img, err := preview(step)
		if err != nil {
			return err
		}
		data, ct, err := provider.EncodePreview(img)
		if err != nil {
			return err
		}
		report(provider.Progress{Step: step, Total: l.steps, Message: message(step, l.steps), Preview: data, PreviewType: ct})
	}
	return nil
}

func generateMessage(step, steps int) string {
	switch {
	case step == steps:
		return "Finishing"
	case step == 1:
		return "Composing the scene"
	case step*2 <= steps:
		return "Rendering"
	}
	return "Refining details"
}

func editMessage(step, steps int) string {
	switch {
	case step == steps:
		return "Finishing"
	case step == 1:
		return "Reading the image"
	}
	return "Applying the edit"
}

// emitPNG encodes img as a PNG and emits it as output index.
func emitPNG(ctx context.Context, emit func(provider.Output) error, index int, img *image.NRGBA) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode output %d: %w", index, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := img.Bounds()
	return emit(provider.Output{Index: index, Data: buf.Bytes(), ContentType: imaging.PNG, Width: b.Dx(), Height: b.Dy()})
}

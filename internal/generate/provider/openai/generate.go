package openai

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
)

// Generate asks the API for req.Count images: one call, or one per image
// for dall-e-3, which makes one at a time. With PartialImages set and a
// gpt-image model it streams, reporting each partial image as a preview.
// Progress has Count × (PartialImages + 1) steps when streaming and Count
// otherwise; each finished image is reported as a step (without preview)
// just before it is emitted.
//
// Seed and Strength are not sent: the API has no such parameters. A
// NegativePrompt is appended to the prompt as "Avoid: …". The size sent is
// SizeFor(Model, Width, Height), so the images may not be exactly Width ×
// Height: each Output says its real size. For an edit, a zero size leaves
// the size to the model.
//
// Returns Validation for a request Request.Validate refuses (or an edit
// whose mask is not a PNG), ContentRejected when the provider's safety
// system refuses the prompt or image, InvalidRequest when it refuses the
// request as malformed, ProviderUnavailable when it is unreachable, busy or
// failing after MaxAttempts attempts, or refuses our key, ProviderTimeout
// when every attempt timed out, ctx.Err() once ctx is done, and emit's
// error as is.
func (c *Client) Generate(ctx context.Context, req provider.Request, report func(provider.Progress), emit func(provider.Output) error) error {
	if report == nil {
		report = func(provider.Progress) {}
	}
	if err := req.Validate(); err != nil {
		return err
	}
	k := &call{c: c, req: req, report: report, emit: emit, perImage: 1}
	if c.streams() {
		k.perImage = c.partials + 1
	}
	k.total = req.Count * k.perImage
	for k.emitted < req.Count {
		if err := k.batch(ctx, min(req.Count-k.emitted, c.maxPerCall)); err != nil {
			return err
		}
	}
	return nil
}

// call is one Generate in progress.
type call struct {
	c        *Client
	req      provider.Request
	report   func(provider.Progress)
	emit     func(provider.Output) error
	perImage int // progress steps per image
	total    int // progress steps in all
	step     int // the last step reported
	emitted  int // images emitted so far
}

// retryable is an attempt's failure that another attempt may not meet: the
// provider was busy, failing or unreachable, or took too long.
type retryable struct {
	err     error
	timeout bool          // the attempt ran out of time
	wait    time.Duration // how long the provider asked us to wait
	hinted  bool          // whether it asked at all
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// batch gets n more images, trying up to MaxAttempts times. An attempt that
// delivered some images before failing is followed by one that asks only
// for the rest.
func (k *call) batch(ctx context.Context, n int) error {
	timedOut := true
	var last error
	for attempt := 1; ; attempt++ {
		before := k.emitted
		err := k.attempt(ctx, n)
		n -= k.emitted - before
		if err == nil && n == 0 {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err == nil {
			err = &retryable{err: fmt.Errorf("openai: the response held %d image(s) fewer than asked for", n)}
		}
		var r *retryable
		if !errors.As(err, &r) {
			return err
		}
		timedOut = timedOut && r.timeout
		last = err
		if attempt >= k.c.attempts {
			break
		}
		k.report(provider.Progress{
			Step:    min(k.step+1, k.total),
			Total:   k.total,
			Message: fmt.Sprintf("Provider busy, retrying (attempt %d of %d)", attempt+1, k.c.attempts),
		})
		if err := provider.Sleep(ctx, k.c.wait(attempt, r)); err != nil {
			return err
		}
	}
	if timedOut {
		return apperr.Wrap(last, provider.ProviderTimeout, "The image provider took too long to answer. Try again in a few minutes.")
	}
	return apperr.Wrap(last, provider.ProviderUnavailable, "The image provider is busy or unavailable. Try again in a few minutes.")
}

// attempt makes one API call for n images and emits what it returns.
func (k *call) attempt(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, k.c.timeout)
	defer cancel()
	hreq, err := k.newRequest(ctx, n)
	if err != nil {
		return err
	}
	resp, err := k.c.http.Do(hreq)
	if err != nil {
		return k.c.networkError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return k.c.statusError(resp)
	}
	return k.readResponse(ctx, resp, n)
}

// wait returns how long to wait after failed attempt number attempt: what
// the provider asked for if it did, else an exponential backoff with
// jitter (so that workers that failed together do not retry together),
// either capped at MaxRetryWait.
func (c *Client) wait(attempt int, r *retryable) time.Duration {
	if r.hinted {
		return min(r.wait, c.maxWait)
	}
	d := c.backoff << min(attempt-1, 20)
	if d <= 0 || d > c.maxWait {
		d = c.maxWait
	}
	return d/2 + rand.N(d/2+1)
}

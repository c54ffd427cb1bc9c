package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
)

// maxErrorBytes bounds the error answer read: real ones are a few hundred
// bytes.
const maxErrorBytes = 64 << 10

// Messages shown to users. The provider's own words go to the log (as the
// cause), except for a malformed request, where they say what to change.
const (
	msgRejected    = "The image provider declined this request under its content policy. Try rewording the prompt or using another image."
	msgUnavailable = "The image provider is not available right now. Try again in a few minutes."
	msgInvalid     = "The image provider could not accept this request"
)

// apiError is the error object of the API, at the top of an error answer or
// in a stream's error event.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    any    `json:"code"` // a string, but gateways have sent numbers
	Param   string `json:"param"`
}

func (e apiError) code() string {
	if e.Code == nil {
		return ""
	}
	return fmt.Sprint(e.Code)
}

// refusal reports whether e is the provider's safety system refusing the
// prompt or image. OpenAI says so with the code content_policy_violation
// or moderation_blocked, and gateways with words in the type or message.
func (e apiError) refusal() bool {
	kind := strings.ToLower(e.code() + " " + e.Type)
	msg := strings.ToLower(e.Message)
	return strings.Contains(kind, "content_policy") || strings.Contains(kind, "moderation") ||
		strings.Contains(kind, "safety") || strings.Contains(msg, "safety system") ||
		strings.Contains(msg, "content policy") || strings.Contains(msg, "moderation")
}

// quotaExhausted reports whether a 429 means our account is out of credit,
// which no retry will fix.
func (e apiError) quotaExhausted() bool {
	kind := e.code() + " " + e.Type
	return strings.Contains(kind, "insufficient_quota") || strings.Contains(kind, "billing_hard_limit")
}

// statusError turns an answer other than 2xx into an error: retryable for
// 408, 409, 425, 429 (unless the quota is spent) and 5xx, a user-facing
// *apperr.Error otherwise. 401 and 403 mean our key or account is wrong,
// which only an operator can fix: they are not retried, and the cause says
// so for the log.
func (c *Client) statusError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var env struct {
		Error apiError `json:"error"`
	}
	_ = json.Unmarshal(raw, &env)
	e := env.Error
	detail := e.Message
	if detail == "" {
		detail = truncate(strings.TrimSpace(string(raw)), 200)
	}
	status := resp.StatusCode
	cause := fmt.Errorf("openai: HTTP %d (type %q, code %q): %s", status, e.Type, e.code(), c.redact(detail))

	switch {
	case status < 500 && e.refusal():
		return apperr.Wrap(cause, provider.ContentRejected, msgRejected)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return apperr.Wrap(fmt.Errorf("check the API key and the account's access to the model: %w", cause), provider.ProviderUnavailable, msgUnavailable)
	case status == http.StatusTooManyRequests && e.quotaExhausted():
		return apperr.Wrap(fmt.Errorf("the account's quota is spent: %w", cause), provider.ProviderUnavailable, msgUnavailable)
	case status == http.StatusRequestTimeout, status == http.StatusConflict, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		wait, hinted := retryAfter(resp.Header, time.Now())
		return &retryable{err: cause, wait: wait, hinted: hinted}
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge,
		status == http.StatusUnsupportedMediaType, status == http.StatusUnprocessableEntity:
		msg := msgInvalid + "."
		if m := strings.TrimSpace(c.redact(e.Message)); m != "" {
			msg = msgInvalid + ": " + truncate(m, 300)
		}
		return apperr.Wrap(cause, provider.InvalidRequest, msg)
	}
	return apperr.Wrap(cause, provider.ProviderUnavailable, msgUnavailable)
}

// eventError turns a stream's error event into an error: a refusal is
// ContentRejected, anything else is the provider failing mid-way, which
// another attempt may not meet.
func (c *Client) eventError(e apiError) error {
	cause := fmt.Errorf("openai: error event (type %q, code %q): %s", e.Type, e.code(), c.redact(e.Message))
	if e.refusal() {
		return apperr.Wrap(cause, provider.ContentRejected, msgRejected)
	}
	return &retryable{err: cause}
}

// networkError is a failure to reach the provider or to read its answer
// within the attempt's context ctx; it counts as a timeout when ctx's
// deadline passed.
func (c *Client) networkError(ctx context.Context, err error) error {
	return &retryable{
		err:     fmt.Errorf("openai: %w", err),
		timeout: errors.Is(ctx.Err(), context.DeadlineExceeded),
	}
}

// retryAfter reads how long the provider asks us to wait: OpenAI's
// retry-after-ms, or Retry-After in seconds (fractions accepted) or as an
// HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	seconds := func(v string, unit time.Duration) (time.Duration, bool) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > float64(24*time.Hour/unit) {
			return 0, false
		}
		return time.Duration(f * float64(unit)), true
	}
	if d, ok := seconds(h.Get("Retry-After-Ms"), time.Millisecond); ok {
		return d, true
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if d, ok := seconds(v, time.Second); ok {
		return d, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

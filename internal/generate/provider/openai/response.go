package openai

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/imaging"
)

// maxResponseBytes bounds a JSON answer: four large PNGs in base64 are well
// under it.
const maxResponseBytes = 256 << 20

// images is the JSON answer of both endpoints.
type images struct {
	Created int64 `json:"created"`
	Data    []struct {
		B64JSON       string `json:"b64_json"`
		URL           string `json:"url"`
		RevisedPrompt string `json:"revised_prompt"`
	} `json:"data"`
}

// streamEvent is one event of a streamed answer.
type streamEvent struct {
	Type              string    `json:"type"`
	B64JSON           string    `json:"b64_json"`
	PartialImageIndex int       `json:"partial_image_index"`
	Error             *apiError `json:"error"`
}

// readResponse emits the images of a successful answer, at most n of them.
// A body that breaks off is a retryable failure; images emitted before it
// stay emitted.
func (k *call) readResponse(ctx context.Context, resp *http.Response, n int) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" {
		return k.readStream(ctx, resp.Body, n)
	}
	var ans images
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&ans); err != nil {
		return k.c.networkError(ctx, fmt.Errorf("openai: read response: %w", err))
	}
	for i, d := range ans.Data {
		if i == n {
			break
		}
		if d.B64JSON == "" {
			return fmt.Errorf("openai: image %d came without b64_json (url %t)", i, d.URL != "")
		}
		if err := k.emitImage(d.B64JSON); err != nil {
			return err
		}
	}
	return nil
}

// readStream reports partial images and emits completed ones as the events
// of a streamed answer arrive, until n images are done or the stream ends.
func (k *call) readStream(ctx context.Context, body io.Reader, n int) error {
	done := 0
	errDone := errors.New("all images received")
	handle := func(data string) error {
		if strings.TrimSpace(data) == "[DONE]" {
			return errDone
		}
		var ev streamEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("openai: decode event: %w", err)
		}
		switch {
		case ev.Type == "error" || ev.Error != nil:
			var e apiError
			if ev.Error != nil {
				e = *ev.Error
			}
			return k.c.eventError(e)
		case strings.HasSuffix(ev.Type, ".partial_image"):
			k.reportPartial(ev)
		case strings.HasSuffix(ev.Type, ".completed"):
			if err := k.emitImage(ev.B64JSON); err != nil {
				return err
			}
			if done++; done == n {
				return errDone
			}
		}
		return nil
	}
	// stop tells the events' own verdicts (errDone, a refusal, emit's
	// error) from the stream breaking off.
	var stop error
	err := readEvents(body, func(_, data string) error {
		stop = handle(data)
		return stop
	})
	switch {
	case stop == errDone:
		return nil
	case stop != nil:
		return stop
	case err != nil:
		return k.c.networkError(ctx, fmt.Errorf("openai: read stream: %w", err))
	}
	return nil
}

// reportPartial reports a partial image as the next step of the image in
// progress, with a preview. The last step of each image is left for the
// finished image. A partial image that cannot be decoded is skipped:
// previews are a nicety, not worth failing the job for.
func (k *call) reportPartial(ev streamEvent) {
	data, err := base64.StdEncoding.DecodeString(ev.B64JSON)
	if err != nil {
		return
	}
	img, _, err := provider.DecodeImage(data, imaging.Limits{})
	if err != nil {
		return
	}
	preview, ct, err := provider.EncodePreview(img)
	if err != nil {
		return
	}
	first := k.emitted * k.perImage
	k.step = max(k.step, min(first+ev.PartialImageIndex+1, first+k.perImage-1))
	k.report(provider.Progress{
		Step:        k.step,
		Total:       k.total,
		Message:     fmt.Sprintf("Rendering image %d of %d", k.emitted+1, k.req.Count),
		Preview:     preview,
		PreviewType: ct,
	})
}

// emitImage decodes one finished image, reports it as a step and emits it.
// An image that is not a PNG, JPEG or WebP is an internal error: the
// provider broke its contract.
func (k *call) emitImage(b64 string) error {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("openai: decode image %d: %w", k.emitted, err)
	}
	hdr, err := imaging.Probe(bytes.NewReader(data), imaging.Limits{})
	if err != nil {
		return fmt.Errorf("openai: image %d: %w", k.emitted, err)
	}
	k.step = (k.emitted + 1) * k.perImage
	k.report(provider.Progress{
		Step:    k.step,
		Total:   k.total,
		Message: fmt.Sprintf("Image %d of %d ready", k.emitted+1, k.req.Count),
	})
	out := provider.Output{Index: k.emitted, Data: data, ContentType: hdr.ContentType, Width: hdr.Width, Height: hdr.Height}
	if err := k.emit(out); err != nil {
		return err
	}
	k.emitted++
	return nil
}

package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/imaging"
)

// generation is the JSON body of POST /v1/images/generations.
type generation struct {
	Model          string `json:"model"`
	Prompt         string `json:"prompt"`
	N              int    `json:"n"`
	Size           string `json:"size,omitempty"`
	ResponseFormat string `json:"response_format,omitempty"`
	Stream         bool   `json:"stream,omitempty"`
	PartialImages  int    `json:"partial_images,omitempty"`
}

// newRequest builds the API call for n images of k.req. The body is built
// afresh for every attempt because n may shrink between them.
func (k *call) newRequest(ctx context.Context, n int) (*http.Request, error) {
	c := k.c
	var body bytes.Buffer
	var contentType, path string
	if k.req.Kind == provider.KindEdit {
		path = "/v1/images/edits"
		var err error
		if contentType, err = k.writeEdit(&body, n); err != nil {
			return nil, err
		}
	} else {
		path = "/v1/images/generations"
		contentType = "application/json"
		g := generation{Model: c.model, Prompt: k.prompt(), N: n, Size: k.size()}
		if !c.gptImage {
			// gpt-image models always answer in base64 and refuse the
			// parameter; the others answer with URLs unless asked.
			g.ResponseFormat = "b64_json"
		}
		if c.streams() {
			g.Stream, g.PartialImages = true, c.partials
		}
		if err := json.NewEncoder(&body).Encode(g); err != nil {
			return nil, fmt.Errorf("openai: encode request: %w", err)
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, &body)
	if err != nil {
		return nil, fmt.Errorf("openai: new request: %w", err)
	}
	hreq.Header.Set("Authorization", "Bearer "+c.key)
	hreq.Header.Set("Content-Type", contentType)
	if c.streams() {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	return hreq, nil
}

// writeEdit writes the multipart body of POST /v1/images/edits and returns
// its content type.
//
// Returns imaging.UnsupportedMediaType when the source is not an image and
// Validation when the mask is not a PNG.
func (k *call) writeEdit(body *bytes.Buffer, n int) (string, error) {
	c := k.c
	srcType, err := imaging.Sniff(head(k.req.Source))
	if err != nil {
		return "", err
	}
	if len(k.req.Mask) > 0 {
		if t, err := imaging.Sniff(head(k.req.Mask)); err != nil || t != imaging.PNG {
			return "", apperr.Errorf(apperr.Validation, "The mask must be a PNG image whose transparent pixels mark where to edit.")
		}
	}

	mw := multipart.NewWriter(body)
	fields := [][2]string{{"model", c.model}, {"prompt", k.prompt()}, {"n", strconv.Itoa(n)}}
	if size := k.size(); size != "" {
		fields = append(fields, [2]string{"size", size})
	}
	if !c.gptImage {
		fields = append(fields, [2]string{"response_format", "b64_json"})
	}
	if c.streams() {
		fields = append(fields, [2]string{"stream", "true"}, [2]string{"partial_images", strconv.Itoa(c.partials)})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return "", fmt.Errorf("openai: write field %s: %w", f[0], err)
		}
	}
	if err := writeFile(mw, "image", "image"+extension(srcType), srcType, k.req.Source); err != nil {
		return "", err
	}
	if len(k.req.Mask) > 0 {
		if err := writeFile(mw, "mask", "mask.png", imaging.PNG, k.req.Mask); err != nil {
			return "", err
		}
	}
	if err := mw.Close(); err != nil {
		return "", fmt.Errorf("openai: close multipart body: %w", err)
	}
	return mw.FormDataContentType(), nil
}

// writeFile adds a file part with its own content type: the API rejects
// images sent as application/octet-stream, which is what
// multipart.Writer.CreateFormFile would say.
func writeFile(mw *multipart.Writer, field, filename, contentType string, data []byte) error {
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, field, filename))
	h.Set("Content-Type", contentType)
	w, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("openai: create %s part: %w", field, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("openai: write %s part: %w", field, err)
	}
	return nil
}

// prompt is the prompt sent: the API has no negative prompt, so it is
// stated in words.
func (k *call) prompt() string {
	p := strings.TrimSpace(k.req.Prompt)
	if neg := strings.TrimSpace(k.req.NegativePrompt); neg != "" {
		p += "\n\nAvoid: " + neg
	}
	return p
}

// size is the size parameter, "" to leave it to the model.
func (k *call) size() string {
	w, h := SizeFor(k.c.model, k.req.Width, k.req.Height)
	if w == 0 || h == 0 {
		return ""
	}
	return fmt.Sprintf("%dx%d", w, h)
}

// SizeFor returns the size Generate asks model for when a request wants
// width × height. OpenAI's models make only a few sizes and refuse any
// other, so for them it is the supported size closest in aspect ratio (for
// dall-e-2, whose sizes are all square, the smallest at least as large as
// the long side, up to 1024); a model this package does not know (a
// gateway's) is asked for exactly width × height. A zero size stays zero,
// which leaves the size to the model.
func SizeFor(model string, width, height int) (int, int) {
	if width <= 0 || height <= 0 {
		return 0, 0
	}
	var sizes [][2]int
	switch {
	case strings.HasPrefix(model, "gpt-image"):
		sizes = [][2]int{{1024, 1024}, {1536, 1024}, {1024, 1536}}
	case model == "dall-e-3":
		sizes = [][2]int{{1024, 1024}, {1792, 1024}, {1024, 1792}}
	case model == "dall-e-2":
		for _, side := range []int{256, 512} {
			if max(width, height) <= side {
				return side, side
			}
		}
		return 1024, 1024
	default:
		return width, height
	}
	want := math.Log(float64(width) / float64(height))
	best := sizes[0]
	for _, s := range sizes[1:] {
		if math.Abs(math.Log(float64(s[0])/float64(s[1]))-want) < math.Abs(math.Log(float64(best[0])/float64(best[1]))-want) {
			best = s
		}
	}
	return best[0], best[1]
}

func head(data []byte) []byte { return data[:min(len(data), imaging.SniffLen)] }

func extension(contentType string) string {
	switch contentType {
	case imaging.JPEG:
		return ".jpg"
	case imaging.WebP:
		return ".webp"
	}
	return ".png"
}

package openai_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/generate/provider/openai"
	"github.com/fastimage/api/internal/imaging"
)

func genRequest(count int) provider.Request {
	return provider.Request{Kind: provider.KindGenerate, Prompt: "a cat on a windowsill", NegativePrompt: "dogs", Width: 1024, Height: 1024, Count: count}
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		model         string
		width, height int
		wantSize      string
		wantCalls     int
		wantN         float64
		wantFormat    any // response_format, nil when absent
	}{
		{"gpt-image-1", 1024, 1024, "1024x1024", 1, 2, nil},
		{"dall-e-2", 512, 512, "512x512", 1, 2, "b64_json"},
		// dall-e-3 makes one image per call, and only three sizes.
		{"dall-e-3", 1344, 768, "1792x1024", 2, 1, "b64_json"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			var sent images
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
				if r.URL.Path != "/v1/images/generations" {
					t.Errorf("path: got %v, want /v1/images/generations", r.URL.Path)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type: got %v, want application/json", ct)
				}
				var body map[string]any
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
					t.Errorf("decode body: %v", err)
				}
				want := map[string]any{
					"model":  tt.model,
					"prompt": "a cat on a windowsill\n\nAvoid: dogs",
					"n":      tt.wantN,
					"size":   tt.wantSize,
				}
				if tt.wantFormat != nil {
					want["response_format"] = tt.wantFormat
				}
				if fmt.Sprint(body) != fmt.Sprint(want) {
					t.Errorf("body: got %v, want %v", body, want)
				}
				var b64s []string
				for i := range int(tt.wantN) {
					// Alternate PNG and JPEG: the content type is read from
					// the bytes.
					b64s = append(b64s, sent.add(picture(t, 48, 32, color.RGBA{uint8(40 * hit), uint8(60 * i), 200, 255}, (hit+i)%2 == 0)))
				}
				writeImages(t, w, b64s...)
			})
			c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.Model = tt.model })
			var rec recorder
			req := genRequest(2)
			req.Width, req.Height = tt.width, tt.height
			if err := c.Generate(context.Background(), req, rec.report, rec.emit); err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got := int(api.hits.Load()); got != tt.wantCalls {
				t.Errorf("calls: got %d, want %d", got, tt.wantCalls)
			}
			checkOutputs(t, rec.outputs, sent.all(), 48, 32)
			wantSteps := []string{"1/2 Image 1 of 2 ready", "2/2 Image 2 of 2 ready"}
			var steps []string
			for _, p := range rec.progress {
				steps = append(steps, fmt.Sprintf("%d/%d %s", p.Step, p.Total, p.Message))
			}
			if !slices.Equal(steps, wantSteps) {
				t.Errorf("progress: got %q, want %q", steps, wantSteps)
			}
		})
	}
}

// checkOutputs checks that outputs are the images sent, in order, each
// with its content type and size.
func checkOutputs(t *testing.T, outputs []provider.Output, sent [][]byte, w, h int) {
	t.Helper()
	if len(outputs) != len(sent) {
		t.Fatalf("outputs: got %d, want %d", len(outputs), len(sent))
	}
	for i, o := range outputs {
		if o.Index != i {
			t.Errorf("output %d index: got %d, want %d", i, o.Index, i)
		}
		if !bytes.Equal(o.Data, sent[i]) {
			t.Errorf("output %d: got other bytes than the API sent", i)
		}
		wantType := imaging.PNG
		if bytes.HasPrefix(sent[i], []byte{0xFF, 0xD8}) {
			wantType = imaging.JPEG
		}
		if o.ContentType != wantType {
			t.Errorf("output %d content type: got %v, want %v", i, o.ContentType, wantType)
		}
		if o.Width != w || o.Height != h {
			t.Errorf("output %d size: got %dx%d, want %dx%d", i, o.Width, o.Height, w, h)
		}
	}
}

func TestEdit(t *testing.T) {
	source := picture(t, 64, 64, color.RGBA{10, 200, 30, 255}, true)
	mask := picture(t, 64, 64, color.RGBA{0, 0, 0, 0}, false)
	tests := []struct {
		name          string
		source, mask  []byte
		width, height int
		wantFields    map[string]string
		wantImageType string
	}{
		{
			"JPEG with mask and size", source, mask, 1024, 1536,
			map[string]string{"model": "gpt-image-1", "prompt": "add a rainbow", "n": "2", "size": "1024x1536"},
			imaging.JPEG,
		},
		{
			"PNG without mask or size", picture(t, 64, 64, color.RGBA{200, 0, 0, 255}, false), nil, 0, 0,
			map[string]string{"model": "gpt-image-1", "prompt": "add a rainbow", "n": "2"},
			imaging.PNG,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent images
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
				if r.URL.Path != "/v1/images/edits" {
					t.Errorf("path: got %v, want /v1/images/edits", r.URL.Path)
				}
				if err := r.ParseMultipartForm(10 << 20); err != nil {
					t.Errorf("parse multipart body: %v", err)
					return
				}
				got := map[string]string{}
				for k, v := range r.MultipartForm.Value {
					got[k] = strings.Join(v, ",")
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.wantFields) {
					t.Errorf("fields: got %v, want %v", got, tt.wantFields)
				}
				checkFile(t, r, "image", tt.wantImageType, tt.source)
				if tt.mask != nil {
					checkFile(t, r, "mask", imaging.PNG, tt.mask)
				} else if _, ok := r.MultipartForm.File["mask"]; ok {
					t.Errorf("mask: got a mask part, want none")
				}
				writeImages(t, w,
					sent.add(picture(t, 40, 60, color.RGBA{1, 2, 3, 255}, false)),
					sent.add(picture(t, 40, 60, color.RGBA{4, 5, 6, 255}, false)))
			})
			c := newClient(t, api.URL, nil)
			var rec recorder
			req := provider.Request{Kind: provider.KindEdit, Prompt: "add a rainbow", Count: 2, Source: tt.source, Mask: tt.mask, Width: tt.width, Height: tt.height, Strength: 0.5}
			if err := c.Generate(context.Background(), req, rec.report, rec.emit); err != nil {
				t.Fatalf("Generate: %v", err)
			}
			checkOutputs(t, rec.outputs, sent.all(), 40, 60)
		})
	}
}

func checkFile(t *testing.T, r *http.Request, field, wantType string, want []byte) {
	t.Helper()
	files := r.MultipartForm.File[field]
	if len(files) != 1 {
		t.Errorf("%s: got %d parts, want 1", field, len(files))
		return
	}
	if ct := files[0].Header.Get("Content-Type"); ct != wantType {
		t.Errorf("%s content type: got %v, want %v", field, ct, wantType)
	}
	f, err := files[0].Open()
	if err != nil {
		t.Errorf("%s: open: %v", field, err)
		return
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %d bytes, want the %d bytes given", field, len(got), len(want))
	}
}

func TestStreaming(t *testing.T) {
	red, blue := color.RGBA{220, 20, 20, 255}, color.RGBA{20, 20, 220, 255}
	tests := []struct {
		name   string
		kind   string
		count  int
		prefix string
	}{
		{"generate one", provider.KindGenerate, 1, "image_generation"},
		{"generate two", provider.KindGenerate, 2, "image_generation"},
		{"edit", provider.KindEdit, 1, "image_edit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent images
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
				if tt.kind == provider.KindEdit {
					if err := r.ParseMultipartForm(10 << 20); err != nil {
						t.Errorf("parse multipart body: %v", err)
					}
					if got := r.FormValue("stream") + " " + r.FormValue("partial_images"); got != "true 2" {
						t.Errorf("stream and partial_images: got %q, want %q", got, "true 2")
					}
				} else {
					var body struct {
						Stream        bool `json:"stream"`
						PartialImages int  `json:"partial_images"`
					}
					json.NewDecoder(r.Body).Decode(&body)
					if !body.Stream || body.PartialImages != 2 {
						t.Errorf("stream and partial_images: got %v and %v, want true and 2", body.Stream, body.PartialImages)
					}
				}
				w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
				w.WriteHeader(http.StatusOK)
				fmt.Fprint(w, ": keep-alive\n\n")
				for range tt.count {
					// The first event ends its lines in CRLF; the second
					// splits its JSON over two data lines.
					first := eventJSON(t, map[string]any{"type": tt.prefix + ".partial_image", "partial_image_index": 0, "b64_json": b64(t, picture(t, 300, 200, red, false))})
					fmt.Fprintf(w, "event: %s.partial_image\r\ndata: %s\r\n\r\n", tt.prefix, first)
					second := eventJSON(t, map[string]any{"type": tt.prefix + ".partial_image", "partial_image_index": 1, "b64_json": b64(t, picture(t, 300, 200, blue, true))})
					cut := strings.Index(second, ",") + 1
					fmt.Fprintf(w, "event: %s.partial_image\ndata: %s\ndata: %s\n\n", tt.prefix, second[:cut], second[cut:])
					writeEvent(w, tt.prefix+".completed", eventJSON(t, map[string]any{
						"type": tt.prefix + ".completed", "b64_json": sent.add(picture(t, 30, 20, red, false)),
						"usage": map[string]int{"total_tokens": 10},
					}))
				}
			})
			c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.PartialImages = 2 })
			var rec recorder
			req := genRequest(tt.count)
			if tt.kind == provider.KindEdit {
				req = provider.Request{Kind: provider.KindEdit, Prompt: "redder", Count: 1, Source: picture(t, 8, 8, blue, false)}
			}
			if err := c.Generate(context.Background(), req, rec.report, rec.emit); err != nil {
				t.Fatalf("Generate: %v", err)
			}
			checkOutputs(t, rec.outputs, sent.all(), 30, 20)

			var got, want []string
			for i := range tt.count {
				want = append(want,
					fmt.Sprintf("%d/%d red", 3*i+1, 3*tt.count),
					fmt.Sprintf("%d/%d blue", 3*i+2, 3*tt.count),
					fmt.Sprintf("%d/%d done", 3*i+3, 3*tt.count))
			}
			for _, p := range rec.progress {
				got = append(got, fmt.Sprintf("%d/%d %s", p.Step, p.Total, previewColour(t, p)))
			}
			if !slices.Equal(got, want) {
				t.Errorf("progress: got %q, want %q", got, want)
			}
		})
	}
}

// previewColour names the colour of a progress report's preview, "done"
// when it has none, and checks that it is a JPEG of at most 256 pixels.
func previewColour(t *testing.T, p provider.Progress) string {
	t.Helper()
	if p.Preview == nil {
		return "done"
	}
	if p.PreviewType != imaging.JPEG {
		t.Errorf("preview type: got %v, want %v", p.PreviewType, imaging.JPEG)
	}
	img, err := jpeg.Decode(bytes.NewReader(p.Preview))
	if err != nil {
		t.Fatalf("decode preview: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 171 {
		t.Errorf("preview size: got %dx%d, want 256x171", b.Dx(), b.Dy())
	}
	r, _, b, _ := img.At(10, 10).RGBA()
	if r > b {
		return "red"
	}
	return "blue"
}

func TestStreamResumesAfterBreakingOff(t *testing.T) {
	var sent images
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
		var body struct {
			N int `json:"n"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if want := map[int]int{1: 2, 2: 1}[hit]; body.N != want {
			t.Errorf("call %d n: got %d, want %d", hit, body.N, want)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		// One image, then the stream ends as if the connection dropped.
		writeEvent(w, "image_generation.completed", eventJSON(t, map[string]any{
			"type": "image_generation.completed", "b64_json": sent.add(picture(t, 16, 16, color.RGBA{uint8(hit), 0, 0, 255}, false)),
		}))
	})
	c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.PartialImages = 1 })
	var rec recorder
	if err := c.Generate(context.Background(), genRequest(2), rec.report, rec.emit); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	checkOutputs(t, rec.outputs, sent.all(), 16, 16)
	if got, want := rec.retries(), []string{"Provider busy, retrying (attempt 2 of 4)"}; !slices.Equal(got, want) {
		t.Errorf("retry reports: got %q, want %q", got, want)
	}
}

func TestContentRejected(t *testing.T) {
	refusal := "Your request was rejected as a result of our safety system. (key " + testKey + ")"
	tests := []struct {
		name   string
		stream bool
		answer func(w http.ResponseWriter)
	}{
		{"moderation_blocked", false, func(w http.ResponseWriter) {
			writeError(w, http.StatusBadRequest, "image_generation_user_error", "moderation_blocked", refusal)
		}},
		{"content_policy_violation", false, func(w http.ResponseWriter) {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "content_policy_violation", "This request has been blocked by our content filters.")
		}},
		{"safety in the type", false, func(w http.ResponseWriter) {
			writeError(w, http.StatusBadRequest, "safety_violation", "", "Blocked.")
		}},
		{"safety system in the message", false, func(w http.ResponseWriter) {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", refusal)
		}},
		{"error event in a stream", true, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			writeEvent(w, "error", `{"type":"error","error":{"type":"image_generation_user_error","code":"moderation_blocked","message":"`+refusal+`"}}`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) { tt.answer(w) })
			c := newClient(t, api.URL, func(cfg *openai.Config) {
				if tt.stream {
					cfg.PartialImages = 1
				}
			})
			var rec recorder
			err := c.Generate(context.Background(), genRequest(1), rec.report, rec.emit)
			checkError(t, err, provider.ContentRejected)
			if got := api.hits.Load(); got != 1 {
				t.Errorf("calls: got %d, want 1 (no retries)", got)
			}
		})
	}
}

// checkError checks that err is an *apperr.Error with code want whose
// message and log text keep the API key secret.
func checkError(t *testing.T, err error, want apperr.Code) *apperr.Error {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error: got %v, want an *apperr.Error", err)
	}
	if ae.Code != want {
		t.Errorf("code: got %v, want %v (%v)", ae.Code, want, err)
	}
	if strings.Contains(ae.Message, testKey) || strings.Contains(err.Error(), testKey) {
		t.Errorf("error: got %q, want it without the API key", err.Error())
	}
	if ae.Message == "" {
		t.Errorf("message: got empty, want a sentence for the user")
	}
	return ae
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		typ, code string
		message   string
		want      apperr.Code
		wantHits  int32
		wantInMsg string
	}{
		{"bad size", 400, "invalid_request_error", "invalid_value", "Invalid value: '640x480'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.", provider.InvalidRequest, 1, "Supported values are"},
		{"unprocessable", 422, "invalid_request_error", "", "The mask does not match the image.", provider.InvalidRequest, 1, "mask does not match"},
		{"too large", 413, "invalid_request_error", "", "", provider.InvalidRequest, 1, ""},
		{"wrong key", 401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided: " + testKey, provider.ProviderUnavailable, 1, ""},
		{"no access", 403, "invalid_request_error", "", "Your organization must be verified to use the model.", provider.ProviderUnavailable, 1, ""},
		{"unknown model", 404, "invalid_request_error", "model_not_found", "The model does not exist.", provider.ProviderUnavailable, 1, ""},
		{"quota spent", 429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota.", provider.ProviderUnavailable, 1, ""},
		{"server error", 500, "server_error", "", "The server had an error.", provider.ProviderUnavailable, 3, ""},
		{"overloaded", 503, "", "", "Overloaded", provider.ProviderUnavailable, 3, ""},
		{"rate limited", 429, "requests", "rate_limit_exceeded", "Rate limit reached.", provider.ProviderUnavailable, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
				writeError(w, tt.status, tt.typ, tt.code, tt.message)
			})
			c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.MaxAttempts = 3 })
			var rec recorder
			err := c.Generate(context.Background(), genRequest(1), rec.report, rec.emit)
			ae := checkError(t, err, tt.want)
			if tt.wantInMsg != "" && !strings.Contains(ae.Message, tt.wantInMsg) {
				t.Errorf("message: got %q, want it to pass on %q", ae.Message, tt.wantInMsg)
			}
			if got := api.hits.Load(); got != tt.wantHits {
				t.Errorf("calls: got %d, want %d", got, tt.wantHits)
			}
			if len(rec.outputs) != 0 {
				t.Errorf("outputs: got %d, want 0", len(rec.outputs))
			}
		})
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	tests := []struct {
		name    string
		fail    int // how many calls fail before one succeeds
		answer  func(w http.ResponseWriter)
		backoff time.Duration
	}{
		// A backoff of a minute: only honouring Retry-After finishes in
		// time.
		{"429 with Retry-After", 1, func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0.01")
			writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached.")
		}, time.Minute},
		{"429 with retry-after-ms", 1, func(w http.ResponseWriter) {
			w.Header().Set("Retry-After-Ms", "10")
			writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached.")
		}, time.Minute},
		{"503 then 502", 2, func(w http.ResponseWriter) {
			writeError(w, http.StatusServiceUnavailable, "", "", "busy")
		}, time.Millisecond},
		{"connection dropped", 1, func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, time.Millisecond},
		{"truncated answer", 1, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"created": 1, "data": [{"b64_js`))
		}, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent images
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
				if hit <= tt.fail {
					tt.answer(w)
					return
				}
				writeImages(t, w, sent.add(picture(t, 8, 8, color.RGBA{9, 9, 9, 255}, false)))
			})
			c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.Backoff = tt.backoff })
			var rec recorder
			start := time.Now()
			if err := c.Generate(context.Background(), genRequest(1), rec.report, rec.emit); err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v, want well under the backoff", elapsed)
			}
			checkOutputs(t, rec.outputs, sent.all(), 8, 8)
			var want []string
			for i := range tt.fail {
				want = append(want, fmt.Sprintf("Provider busy, retrying (attempt %d of 4)", i+2))
			}
			if got := rec.retries(); !slices.Equal(got, want) {
				t.Errorf("retry reports: got %q, want %q", got, want)
			}
			if got := int(api.hits.Load()); got != tt.fail+1 {
				t.Errorf("calls: got %d, want %d", got, tt.fail+1)
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
		writeError(w, http.StatusInternalServerError, "server_error", "", "The server had an error while processing your request.")
	})
	c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.MaxAttempts = 3 })
	var rec recorder
	err := c.Generate(context.Background(), genRequest(1), rec.report, rec.emit)
	checkError(t, err, provider.ProviderUnavailable)
	if got := api.hits.Load(); got != 3 {
		t.Errorf("calls: got %d, want 3", got)
	}
	want := []string{"Provider busy, retrying (attempt 2 of 3)", "Provider busy, retrying (attempt 3 of 3)"}
	if got := rec.retries(); !slices.Equal(got, want) {
		t.Errorf("retry reports: got %q, want %q", got, want)
	}
	for _, p := range rec.progress {
		if p.Step != 1 || p.Total != 1 {
			t.Errorf("retry report step: got %d of %d, want 1 of 1", p.Step, p.Total)
		}
	}
}

func TestTimeout(t *testing.T) {
	stall := func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client going away only once it has read
		// the request body.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	tests := []struct {
		name   string
		stream bool
		answer func(w http.ResponseWriter, r *http.Request, hit int)
		want   apperr.Code
	}{
		{"every attempt stalls", false, func(w http.ResponseWriter, r *http.Request, hit int) { stall(w, r) }, provider.ProviderTimeout},
		{"stream stalls after a partial image", true, func(w http.ResponseWriter, r *http.Request, hit int) {
			w.Header().Set("Content-Type", "text/event-stream")
			writeEvent(w, "image_generation.partial_image", eventJSON(t, map[string]any{
				"type": "image_generation.partial_image", "b64_json": b64(t, picture(t, 8, 8, color.RGBA{1, 1, 1, 255}, false)),
			}))
			stall(w, r)
		}, provider.ProviderTimeout},
		{"a stall, then a server error", false, func(w http.ResponseWriter, r *http.Request, hit int) {
			if hit == 1 {
				stall(w, r)
				return
			}
			writeError(w, http.StatusInternalServerError, "server_error", "", "oops")
		}, provider.ProviderUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, tt.answer)
			c := newClient(t, api.URL, func(cfg *openai.Config) {
				cfg.Timeout = 50 * time.Millisecond
				cfg.MaxAttempts = 2
				if tt.stream {
					cfg.PartialImages = 1
				}
			})
			var rec recorder
			start := time.Now()
			err := c.Generate(context.Background(), genRequest(1), rec.report, rec.emit)
			checkError(t, err, tt.want)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v, want about two timeouts", elapsed)
			}
			if got := api.hits.Load(); got != 2 {
				t.Errorf("calls: got %d, want 2", got)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name string
		// cancelOn says when to cancel: "start" before Generate, "request"
		// once the API has the request, "retry" when the retry is reported.
		cancelOn string
		wantHits int32
	}{
		{"before the call", "start", 0},
		{"mid-request", "request", 1},
		{"while waiting to retry", "retry", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
				if tt.cancelOn == "request" {
					// The server notices the client going away only once
					// it has read the request body.
					io.Copy(io.Discard, r.Body)
					cancel()
					select {
					case <-r.Context().Done():
					case <-time.After(10 * time.Second):
					}
					return
				}
				writeError(w, http.StatusServiceUnavailable, "", "", "busy")
			})
			// A minute of backoff: only stopping at once finishes in time.
			c := newClient(t, api.URL, func(cfg *openai.Config) { cfg.Backoff = time.Minute })
			if tt.cancelOn == "start" {
				cancel()
			}
			report := func(p provider.Progress) {
				if tt.cancelOn == "retry" {
					cancel()
				}
			}
			start := time.Now()
			err := c.Generate(ctx, genRequest(1), report, func(provider.Output) error { return nil })
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error: got %v, want %v", err, context.Canceled)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("took %v, want an immediate return", elapsed)
			}
			if got := api.hits.Load(); got != tt.wantHits {
				t.Errorf("calls: got %d, want %d", got, tt.wantHits)
			}
		})
	}
}

func TestEmitErrorStops(t *testing.T) {
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
		writeImages(t, w, b64(t, picture(t, 8, 8, color.RGBA{1, 1, 1, 255}, false)), b64(t, picture(t, 8, 8, color.RGBA{2, 2, 2, 255}, false)))
	})
	c := newClient(t, api.URL, nil)
	errFull := errors.New("storage full")
	calls := 0
	err := c.Generate(context.Background(), genRequest(2), nil, func(provider.Output) error {
		calls++
		return errFull
	})
	if err != errFull {
		t.Errorf("error: got %v, want %v", err, errFull)
	}
	if calls != 1 || api.hits.Load() != 1 {
		t.Errorf("emits and calls: got %d and %d, want 1 and 1", calls, api.hits.Load())
	}
}

func TestRejectsBadRequestsWithoutCalling(t *testing.T) {
	tests := []struct {
		name string
		req  provider.Request
		want apperr.Code
	}{
		{"no prompt", provider.Request{Kind: provider.KindGenerate, Width: 1024, Height: 1024, Count: 1}, apperr.Validation},
		{"too many", provider.Request{Kind: provider.KindGenerate, Prompt: "x", Width: 1024, Height: 1024, Count: 5}, apperr.Validation},
		{"source not an image", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: []byte("text")}, imaging.UnsupportedMediaType},
		{"JPEG mask", provider.Request{Kind: provider.KindEdit, Prompt: "x", Count: 1, Source: picture(t, 8, 8, color.RGBA{}, false), Mask: picture(t, 8, 8, color.RGBA{}, true)}, apperr.Validation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {})
			c := newClient(t, api.URL, nil)
			err := c.Generate(context.Background(), tt.req, nil, func(provider.Output) error { return nil })
			if got := apperr.CodeOf(err); got != tt.want {
				t.Errorf("code: got %v, want %v (%v)", got, tt.want, err)
			}
			if got := api.hits.Load(); got != 0 {
				t.Errorf("calls: got %d, want 0", got)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     openai.Config
		wantErr bool
	}{
		{"defaults", openai.Config{APIKey: "k"}, false},
		{"everything", openai.Config{BaseURL: "http://gateway:8080/v1/", APIKey: "k", Model: "dall-e-3", Timeout: time.Minute, MaxAttempts: 2, Backoff: time.Second, PartialImages: 3}, false},
		{"no key", openai.Config{}, true},
		{"relative URL", openai.Config{BaseURL: "api.openai.com", APIKey: "k"}, true},
		{"ftp URL", openai.Config{BaseURL: "ftp://api.openai.com", APIKey: "k"}, true},
		{"negative timeout", openai.Config{APIKey: "k", Timeout: -time.Second}, true},
		{"negative attempts", openai.Config{APIKey: "k", MaxAttempts: -1}, true},
		{"too many partial images", openai.Config{APIKey: "k", PartialImages: 4}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := openai.New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tt.wantErr)
			}
			if err == nil && c.Name() != "openai" {
				t.Errorf("Name: got %v, want openai", c.Name())
			}
		})
	}
	t.Run("base URL ending in /v1", func(t *testing.T) {
		api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, hit int) {
			if r.URL.Path != "/v1/images/generations" {
				t.Errorf("path: got %v, want /v1/images/generations", r.URL.Path)
			}
			writeImages(t, w, b64(t, picture(t, 8, 8, color.RGBA{1, 1, 1, 255}, false)))
		})
		c := newClient(t, api.URL+"/v1/", nil)
		if err := c.Generate(context.Background(), genRequest(1), nil, func(provider.Output) error { return nil }); err != nil {
			t.Fatalf("Generate: %v", err)
		}
	})
}

func TestSizeFor(t *testing.T) {
	tests := []struct {
		model         string
		width, height int
		wantW, wantH  int
	}{
		{"gpt-image-1", 1024, 1024, 1024, 1024},
		{"gpt-image-1", 1344, 768, 1536, 1024},
		{"gpt-image-1", 832, 1216, 1024, 1536},
		{"gpt-image-1", 1152, 896, 1536, 1024},
		{"gpt-image-1", 1050, 1000, 1024, 1024},
		{"gpt-image-1-mini", 768, 1344, 1024, 1536},
		{"dall-e-3", 1344, 768, 1792, 1024},
		{"dall-e-3", 512, 512, 1024, 1024},
		{"dall-e-2", 200, 100, 256, 256},
		{"dall-e-2", 300, 512, 512, 512},
		{"dall-e-2", 2048, 1024, 1024, 1024},
		{"flux-dev", 1344, 768, 1344, 768},
		{"gpt-image-1", 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %dx%d", tt.model, tt.width, tt.height), func(t *testing.T) {
			if w, h := openai.SizeFor(tt.model, tt.width, tt.height); w != tt.wantW || h != tt.wantH {
				t.Errorf("SizeFor: got %dx%d, want %dx%d", w, h, tt.wantW, tt.wantH)
			}
		})
	}
}

package openai_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/generate/provider/openai"
)

const testKey = "sk-test-0123456789-do-not-leak"

// fakeAPI is an OpenAI-compatible Images API that checks what every request
// must carry and lets each test answer.
type fakeAPI struct {
	URL  string
	hits atomic.Int32
}

func newFakeAPI(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, hit int)) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit := int(f.hits.Add(1))
		if r.Method != http.MethodPost {
			t.Errorf("method: got %v, want POST", r.Method)
		}
		if got, want := r.Header.Get("Authorization"), "Bearer "+testKey; got != want {
			t.Errorf("Authorization: got %q, want %q", got, want)
		}
		answer(w, r, hit)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func newClient(t *testing.T, baseURL string, change func(*openai.Config)) *openai.Client {
	t.Helper()
	cfg := openai.Config{
		BaseURL:     baseURL,
		APIKey:      testKey,
		Model:       "gpt-image-1",
		Timeout:     5 * time.Second,
		MaxAttempts: 4,
		Backoff:     time.Millisecond,
	}
	if change != nil {
		change(&cfg)
	}
	c, err := openai.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// recorder keeps what a Generate call reported and emitted. report and
// emit are called from Generate's goroutine only, but the tests read them
// after Generate returns, so no lock is needed.
type recorder struct {
	progress []provider.Progress
	outputs  []provider.Output
}

func (r *recorder) report(p provider.Progress) { r.progress = append(r.progress, p) }

func (r *recorder) emit(o provider.Output) error {
	r.outputs = append(r.outputs, o)
	return nil
}

// messages returns the progress messages that mention retrying.
func (r *recorder) retries() []string {
	var out []string
	for _, p := range r.progress {
		if strings.Contains(p.Message, "retrying") {
			out = append(out, p.Message)
		}
	}
	return out
}

// picture returns an encoded w×h image of one colour, as a PNG or a JPEG.
func picture(t *testing.T, w, h int, c color.RGBA, asJPEG bool) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	var buf bytes.Buffer
	var err error
	if asJPEG {
		err = jpeg.Encode(&buf, img, nil)
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// images keeps the images a fake API sent, in order, so that tests can
// compare them with what was emitted.
type images struct {
	mu   sync.Mutex
	sent [][]byte
}

func (s *images) add(data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, data)
	return base64.StdEncoding.EncodeToString(data)
}

func (s *images) all() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// writeImages answers with the JSON of a successful call.
func writeImages(t *testing.T, w http.ResponseWriter, b64s ...string) {
	t.Helper()
	type datum struct {
		B64JSON string `json:"b64_json"`
	}
	ans := struct {
		Created int64   `json:"created"`
		Data    []datum `json:"data"`
		Usage   any     `json:"usage"`
	}{Created: 1_700_000_000, Usage: map[string]int{"total_tokens": 100}}
	for _, b := range b64s {
		ans.Data = append(ans.Data, datum{b})
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(ans); err != nil {
		t.Errorf("write answer: %v", err)
	}
}

// writeError answers with the API's error JSON.
func writeError(w http.ResponseWriter, status int, typ, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "code": code, "param": nil}})
	w.Write(body)
}

// writeEvent writes one server-sent event and flushes it.
func writeEvent(w http.ResponseWriter, name, data string) {
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
	w.(http.Flusher).Flush()
}

func eventJSON(t *testing.T, fields map[string]any) string {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func b64(t *testing.T, data []byte) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(data)
}

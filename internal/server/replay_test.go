package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An event's URLs are signed when it is delivered, not when it was written:
// replayed after the live stream's output URL expired, the OUTPUT event
// carries a fresh URL of the same image. Previews are deleted when the
// generation ends, so a replay's PROGRESS events have no previewUrl.
func TestReplayedOutputURLStillWorks(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Generate.LocalStepDelay = 40 * time.Millisecond // the live stream sees the steps, with previews
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "replay@example.com")
	var sub submitted
	me.must(generateMutation, map[string]any{"in": map[string]any{"prompt": "a harbour at dawn", "width": 256, "height": 256}}, &sub)
	id := sub.GenerateImage.Generation.ID

	live := subscribeEvents(t, s, me.token, id, nil).rest()
	checkSequence(t, live, 1)
	liveURL := outputURL(t, live)
	image := mustDownloadImage(t, "live output URL", liveURL)
	if previewURLs(live) == 0 {
		t.Fatalf("no live PROGRESS event had a previewUrl (kinds %v); the replay's null ones would prove nothing", kinds(live))
	}

	// Past the URL's lifetime: URLTTL, rounded up to the next quarter hour.
	s.clock.Advance(cfg.Works.URLTTL + 15*time.Minute)
	if resp, body := get(t, liveURL); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "expired") {
		t.Fatalf("live output URL after its lifetime: got %d %.80q, want 403, expired", resp.StatusCode, body)
	}

	zero := 0
	replay := subscribeEvents(t, s, me.token, id, &zero).rest()
	checkSequence(t, replay, 1)
	if len(replay) != len(live) {
		t.Fatalf("replay has kinds %v, want %v", kinds(replay), kinds(live))
	}
	replayURL := outputURL(t, replay)
	if replayURL == liveURL {
		t.Fatalf("the replay's output URL is the expired one: %s", replayURL)
	}
	if got := mustDownloadImage(t, "replayed output URL", replayURL); !bytes.Equal(got, image) {
		t.Errorf("replayed output URL: got %d bytes, want the %d bytes of the live one", len(got), len(image))
	}
	if n := previewURLs(replay); n != 0 {
		t.Errorf("%d replayed PROGRESS events have a previewUrl, want none after the generation ended", n)
	}

	// The work's image URL is signed afresh too.
	var w struct {
		Work struct{ Images []struct{ Role, URL string } }
	}
	me.must(`query($id: ID!) { work(id: $id) { images { role url } } }`, map[string]any{"id": sub.GenerateImage.Work.ID}, &w)
	if len(w.Work.Images) != 1 || w.Work.Images[0].Role != "OUTPUT" {
		t.Fatalf("work images %+v, want one OUTPUT", w.Work.Images)
	}
	if got := mustDownloadImage(t, "Image.url", w.Work.Images[0].URL); !bytes.Equal(got, image) {
		t.Errorf("Image.url: got %d bytes, want the %d bytes of the output", len(got), len(image))
	}
}

// outputURL returns the outputUrl of the only OUTPUT event in evs.
func outputURL(t *testing.T, evs []genEvent) string {
	t.Helper()
	var urls []string
	for _, e := range evs {
		if e.Kind == "OUTPUT" {
			if e.OutputURL == nil {
				t.Fatalf("OUTPUT event %d has no outputUrl", e.Seq)
			}
			urls = append(urls, *e.OutputURL)
		}
	}
	if len(urls) != 1 {
		t.Fatalf("%d OUTPUT events in %v, want 1", len(urls), kinds(evs))
	}
	return urls[0]
}

// previewURLs counts the PROGRESS events in evs that have a previewUrl.
func previewURLs(evs []genEvent) int {
	n := 0
	for _, e := range evs {
		if e.Kind == "PROGRESS" && e.PreviewURL != nil {
			n++
		}
	}
	return n
}

// mustDownloadImage fetches url and returns the image it serves.
func mustDownloadImage(t *testing.T, what, url string) []byte {
	t.Helper()
	resp, body := get(t, url)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(http.DetectContentType(body), "image/") {
		t.Fatalf("%s: got %d %s (%d bytes), want 200 and an image", what, resp.StatusCode, http.DetectContentType(body), len(body))
	}
	return body
}

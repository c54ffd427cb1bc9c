package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/imaging/imagingtest"
)

// timeoutsConfig has HTTP timeouts short enough for tests: a body gets 1 s,
// then must keep up 64 KiB/s.
func timeoutsConfig() *config.Serve {
	cfg := testConfig()
	cfg.HTTPReadHeaderTimeout = 500 * time.Millisecond
	cfg.HTTPReadTimeout = time.Second
	cfg.HTTPMinBodyRate = 64 << 10
	cfg.HTTPIdleTimeout = 500 * time.Millisecond
	return cfg
}

// rawConn opens a bare TCP connection to the server, for requests no
// well-behaved client would send.
func rawConn(t *testing.T, baseURL string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed reads from r until the server closes the connection, and fails
// the test if it is still open after timeout.
func waitClosed(t *testing.T, c net.Conn, r io.Reader, timeout time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, r)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", timeout)
	}
}

// A body that trickles in (one byte a second) is cut once it falls behind
// the minimum rate: the request is answered 408 REQUEST_TIMEOUT, or — on a
// route that never reads its body, where net/http drains it before
// answering — answered once the drain is cut, and the connection closed.
// Before, all of them stayed open as long as the client liked.
func TestSlowRequestBodyIsCut(t *testing.T) {
	t.Parallel()
	s := start(t, timeoutsConfig())
	for _, tc := range []struct {
		name, path, contentType string
		chunked                 bool
		wantStatus              int
	}{
		{"json", "/graphql", "application/json", false, http.StatusRequestTimeout},
		{"json chunked", "/graphql", "application/json", true, http.StatusRequestTimeout},
		{"multipart upload", "/graphql", "multipart/form-data; boundary=xyz", false, http.StatusRequestTimeout},
		{"a route that does not read it", "/nowhere", "text/plain", false, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, s.URL)
			framing := "Content-Length: 1000"
			if tc.chunked {
				framing = "Transfer-Encoding: chunked"
			}
			if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: localhost\r\nOrigin: %s\r\nContent-Type: %s\r\n%s\r\n\r\n", tc.path, testOrigin, tc.contentType, framing); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() { // the slow client
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					b := []byte("{")
					if tc.chunked {
						b = []byte("1\r\n{\r\n")
					}
					if _, err := c.Write(b); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			// Cut at 1 s; the margin is for a busy machine.
			const bound = 5 * time.Second
			started := time.Now()
			_ = c.SetReadDeadline(started.Add(bound))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer within %v: %v", bound, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusRequestTimeout {
				var out gqlResponse
				if err := json.Unmarshal(body, &out); err != nil {
					t.Fatalf("408 body is not JSON: %s", body)
				}
				if out.code() != "REQUEST_TIMEOUT" {
					t.Errorf("got code %q, want REQUEST_TIMEOUT", out.code())
				}
			}
			waitClosed(t, c, br, bound-time.Since(started))
		})
	}
}

// pacedReader hands out its bytes at about rate bytes a second, as a slow
// but steady link would.
type pacedReader struct {
	r    io.Reader
	rate int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	chunk := p.rate / 20
	if len(b) > chunk {
		b = b[:chunk]
	}
	time.Sleep(50 * time.Millisecond) // the link, not a wait for the server
	return p.r.Read(b)
}

// An upload that takes longer than the read timeout, at a steady rate above
// the minimum, goes through.
func TestSteadySlowUploadPasses(t *testing.T) {
	t.Parallel()
	s := start(t, timeoutsConfig())
	me, _ := mustSignUp(t, s, "steady@example.com")
	img := imagingtest.NoisyPNG(320, 320)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{"query": uploadMutation, "variables": map[string]any{"file": nil, "title": "steady"}})
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0": ["variables.file"]}`)
	fw, _ := mw.CreateFormFile("0", "steady.png")
	_, _ = fw.Write(img)
	_ = mw.Close()
	size := body.Len()
	// 256 KiB/s, four times the minimum: about 1.6 s, past the 1 s timeout.
	req, err := http.NewRequest("POST", s.URL+"/graphql", &pacedReader{r: &body, rate: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(size)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+me.token)
	started := time.Now()
	resp, out := do(t, req)
	if resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
		t.Fatalf("upload of %d bytes: status %d, errors %+v", size, resp.StatusCode, out.Errors)
	}
	if took := time.Since(started); took < time.Second {
		t.Fatalf("the upload took %v; it must outlast the 1 s read timeout to prove anything", took)
	}
	var u uploaded
	if err := json.Unmarshal(out.Data, &u); err != nil {
		t.Fatal(err)
	}
	if w := u.UploadImage.Work; w.Status != "SUCCEEDED" || len(w.Images) != 1 || w.Images[0].Width != 320 {
		t.Fatalf("work %+v", w)
	}
}

// A keep-alive connection left idle, and one whose headers never finish,
// are closed after their timeouts.
func TestIdleAndHalfSentConnectionsClose(t *testing.T) {
	t.Parallel()
	s := start(t, timeoutsConfig())
	const bound = 5 * time.Second // the timeouts are 500 ms
	t.Run("idle keep-alive", func(t *testing.T) {
		c := rawConn(t, s.URL)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(bound))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("got %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		waitClosed(t, c, br, bound)
	})
	t.Run("headers never finished", func(t *testing.T) {
		c := rawConn(t, s.URL)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: local"); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, c, c, bound)
	})
}

// Streams are not HTTP requests waiting for a body: a WebSocket (hijacked)
// and an SSE stream (its body read) keep going well past every HTTP
// timeout.
func TestStreamsOutliveHTTPTimeouts(t *testing.T) {
	t.Parallel()
	s := start(t, timeoutsConfig())
	const ticks = 10 // 250 ms apart: 2.5 s, past the 1 s read and 0.5 s idle timeouts
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		c := wsAck(t, s.URL, "graphql-transport-ws")
		wsSend(t, c, wsMessage{ID: "1", Type: "subscribe", Payload: mustJSON(map[string]any{"query": heartbeatQuery})})
		for want := 1; want <= ticks; want++ {
			m := wsNext(t, c, 5*time.Second)
			if m.Type != "next" {
				t.Fatalf("tick %d: got %s %s", want, m.Type, m.Payload)
			}
		}
	})
	t.Run("sse", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest("POST", s.URL+"/graphql", strings.NewReader(string(mustJSON(map[string]any{"query": heartbeatQuery}))))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
		defer deadline.Stop()
		r := bufio.NewReader(resp.Body)
		for got := 0; got < ticks; {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %d events: %v", got, err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, "heartbeat") {
				got++
			}
		}
	})
}

package server_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// multipartBody writes parts (name, filename, content; filename "" for a
// field) and returns the body and its Content-Type.
func multipartBody(parts ...[3]string) (*bytes.Buffer, string) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range parts {
		if p[1] == "" {
			_ = mw.WriteField(p[0], p[2])
			continue
		}
		fw, _ := mw.CreateFormFile(p[0], p[1])
		_, _ = fw.Write([]byte(p[2]))
	}
	_ = mw.Close()
	return &body, mw.FormDataContentType()
}

// Every transport answers every problem with a code and a fitting status:
// multipart uploads, methods no transport serves, SSE and WebSocket
// handshakes.
func TestTransportErrorsHaveCodes(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // uploads up to 1 MiB, JSON bodies up to 64 KiB
	s := start(t, cfg)
	me, _ := mustSignUp(t, s, "transport@example.com")

	const ops = `{"query":"mutation($file: Upload!) { uploadImage(input: {file: $file}) { work { id } } }","variables":{"file":null}}`
	const fileMap = `{"0":["variables.file"]}`
	multi := func(parts ...[3]string) func() *http.Request {
		return func() *http.Request {
			body, ct := multipartBody(parts...)
			req, _ := http.NewRequest("POST", s.URL+"/graphql", body)
			req.Header.Set("Content-Type", ct)
			return req
		}
	}
	raw := func(method, contentType, body string, header ...string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest(method, s.URL+"/graphql", strings.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			return req
		}
	}
	oversizeFile := strings.Repeat("x", int(cfg.MaxUploadBytes)+10)
	tests := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
		wantCode   string
	}{
		{"multipart: file over the upload limit", multi([3]string{"operations", "", ops}, [3]string{"map", "", fileMap}, [3]string{"0", "big.png", oversizeFile}), 413, "PAYLOAD_TOO_LARGE"},
		{"multipart: body over the body limit, chunked", func() *http.Request {
			body, ct := multipartBody([3]string{"operations", "", ops}, [3]string{"map", "", fileMap}, [3]string{"0", "big.png", strings.Repeat("y", int(cfg.MaxUploadBytes+cfg.MaxBodyBytes))})
			req, _ := http.NewRequest("POST", s.URL+"/graphql", io.MultiReader(body)) // no Content-Length
			req.Header.Set("Content-Type", ct)
			return req
		}, 413, "PAYLOAD_TOO_LARGE"},
		{"multipart: operations over the body limit", multi([3]string{"operations", "", `{"query":"{ serverInfo { version } }","variables":{"pad":"` + strings.Repeat("z", int(cfg.MaxBodyBytes)) + `"}}`}), 413, "PAYLOAD_TOO_LARGE"},
		{"multipart: no boundary", raw("POST", "multipart/form-data", "whatever"), 400, "BAD_REQUEST"},
		{"multipart: truncated body", raw("POST", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{\"query\""), 400, "BAD_REQUEST"},
		{"multipart: map before operations", multi([3]string{"map", "", fileMap}, [3]string{"operations", "", ops}), 400, "BAD_REQUEST"},
		{"multipart: operations not JSON", multi([3]string{"operations", "", `{"query":`}, [3]string{"map", "", fileMap}), 400, "BAD_REQUEST"},
		{"multipart: no map", multi([3]string{"operations", "", ops}), 400, "BAD_REQUEST"},
		{"multipart: map not JSON", multi([3]string{"operations", "", ops}, [3]string{"map", "", `["variables.file"]`}), 400, "BAD_REQUEST"},
		{"multipart: map path outside the variables", multi([3]string{"operations", "", ops}, [3]string{"map", "", `{"0":["query"]}`}, [3]string{"0", "a.png", "x"}), 400, "BAD_REQUEST"},
		{"multipart: map path through a string", multi([3]string{"operations", "", `{"query":"{ serverInfo { version } }","variables":{"file":"s"}}`}, [3]string{"map", "", `{"0":["variables.file.x"]}`}, [3]string{"0", "a.png", "x"}), 400, "BAD_REQUEST"},
		{"multipart: map index out of range", multi([3]string{"operations", "", `{"query":"{ serverInfo { version } }","variables":{"files":[]}}`}, [3]string{"map", "", `{"0":["variables.files.3"]}`}, [3]string{"0", "a.png", "x"}), 400, "BAD_REQUEST"},
		{"multipart: file not in the map", multi([3]string{"operations", "", ops}, [3]string{"map", "", fileMap}, [3]string{"1", "a.png", "x"}), 400, "BAD_REQUEST"},
		{"multipart: mapped file missing", multi([3]string{"operations", "", ops}, [3]string{"map", "", fileMap}), 400, "BAD_REQUEST"},
		{"multipart: no query", multi([3]string{"operations", "", `{}`}, [3]string{"map", "", `{}`}), 400, "BAD_REQUEST"},
		{"multipart: unacceptable Accept", func() *http.Request {
			req := multi([3]string{"operations", "", ops}, [3]string{"map", "", fileMap}, [3]string{"0", "a.png", "x"})()
			req.Header.Set("Accept", "text/html")
			return req
		}, 406, "BAD_REQUEST"},
		{"PUT", raw("PUT", "application/json", `{"query":"{ serverInfo { version } }"}`), 405, "BAD_REQUEST"},
		{"DELETE", raw("DELETE", "", ""), 405, "BAD_REQUEST"},
		{"upgrade to something else", raw("GET", "", "", "Connection", "Upgrade", "Upgrade", "h2c"), 400, "BAD_REQUEST"},
		{"WebSocket upgrade without a key", raw("GET", "", "", "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13"), 400, "BAD_REQUEST"},
		{"WebSocket upgrade over POST", raw("POST", "", "", "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), 405, "BAD_REQUEST"},
		{"SSE: body not JSON", raw("POST", "application/json", `{"query": "subscription { heartbeat { seq } }", "variables": {"password": "hunter2-secret"`, "Accept", "text/event-stream"), 400, "BAD_REQUEST"},
		{"SSE: no query", raw("POST", "application/json", `{}`, "Accept", "text/event-stream"), 400, "BAD_REQUEST"},
		{"SSE: body over the limit", func() *http.Request {
			req := raw("POST", "application/json", `{"query":"subscription { heartbeat { seq } }","variables":{"pad":"`+strings.Repeat("p", int(cfg.MaxBodyBytes))+`"}}`, "Accept", "text/event-stream")()
			req.Body = io.NopCloser(io.MultiReader(req.Body)) // chunked: read, then refused
			req.ContentLength = -1
			return req
		}, 413, "PAYLOAD_TOO_LARGE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			req.Header.Set("Authorization", "Bearer "+me.token)
			resp, out := do(t, req)
			if resp.StatusCode != tc.wantStatus || out.code() != tc.wantCode {
				t.Fatalf("got %d %q (%+v), want %d %s", resp.StatusCode, out.code(), out.Errors, tc.wantStatus, tc.wantCode)
			}
			for _, e := range out.Errors {
				if e.Extensions["code"] == nil || e.Message == "" {
					t.Errorf("error without a code or a message: %+v", e)
				}
			}
		})
	}
	if logs := s.logs.String(); strings.Contains(logs, "hunter2-secret") {
		t.Error("the body of a refused SSE request reached the log")
	}
}

// A file that fits is still accepted through the multipart transport, in
// memory or through a temporary file.
func TestMultipartUploadWithinLimits(t *testing.T) {
	t.Parallel()
	s := start(t, worksCfg())
	me, _ := mustSignUp(t, s, "multipart@example.com")
	out := me.upload("notes.png", []byte("not an image"), "")
	if out.code() != "UNSUPPORTED_MEDIA_TYPE" {
		t.Fatalf("small file: got %q (%+v), want UNSUPPORTED_MEDIA_TYPE from the domain", out.code(), out.Errors)
	}
	big := append([]byte("not an image either"), bytes.Repeat([]byte{0}, 3<<19)...) // 1.5 MiB: past the in-memory part
	out = me.upload("big.png", big, "")
	if out.code() != "UNSUPPORTED_MEDIA_TYPE" {
		t.Fatalf("large file: got %q (%+v), want UNSUPPORTED_MEDIA_TYPE from the domain", out.code(), out.Errors)
	}
}

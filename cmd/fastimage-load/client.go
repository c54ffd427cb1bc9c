package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// maxResponseBytes bounds what the tool reads of one answer: images of the
// sizes it asks for and GraphQL pages are far smaller.
const maxResponseBytes = 32 << 20

// opError is a failed operation, with the code the report counts it under:
// the GraphQL error's extensions.code, "HTTP <status>", or
// "transport: <what>".
type opError struct {
	code string
	msg  string
}

func (e *opError) Error() string { return e.code + ": " + e.msg }

// codeOf returns the code err is counted under.
func codeOf(err error) string {
	if oe, ok := errors.AsType[*opError](err); ok {
		return oe.code
	}
	return transportCode(err)
}

// transportCode names a failure below HTTP in a few words that group well.
func transportCode(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "transport: timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport: connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "transport: connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "transport: connection closed"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "transport: source address not available"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "transport: timeout"
	}
	// The innermost cause, without the addresses and ports that would
	// make every connection's failure a code of its own.
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		inner := error(oe)
		for next := errors.Unwrap(inner); next != nil; next = errors.Unwrap(inner) {
			inner = next
		}
		return "transport: " + oe.Op + ": " + inner.Error()
	}
	return "transport: " + err.Error()
}

// gqlError is one entry of a GraphQL response's errors.
type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

func (e gqlError) opError() *opError {
	code := e.Extensions.Code
	if code == "" {
		code = "GraphQL error without a code"
	}
	return &opError{code: code, msg: e.Message}
}

// client is one virtual user's HTTP side: its own connections (from its own
// source address) and, once signed in, its session token.
type client struct {
	base  *url.URL
	http  *http.Client
	token string
}

func newClient(base *url.URL, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *client {
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &client{base: base, http: &http.Client{
		Transport: tr,
		Timeout:   2 * time.Minute,
		// A signed URL may redirect (to a bucket); it must stay on this
		// machine like everything else.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if _, err := checkLoopback(req.URL.String()); err != nil {
				return err
			}
			return nil
		},
	}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// graphql runs one operation over HTTP POST and decodes its data into out.
// Any error in the answer fails the operation with the first error's code.
func (c *client) graphql(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.JoinPath("/graphql").String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/graphql-response+json, application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	status, raw, err := c.fetch(req)
	if err != nil {
		return err
	}
	var answer struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		if status != http.StatusOK {
			return &opError{code: fmt.Sprintf("HTTP %d", status), msg: snippet(raw)}
		}
		return &opError{code: "bad response", msg: err.Error()}
	}
	if len(answer.Errors) > 0 {
		return answer.Errors[0].opError()
	}
	if status != http.StatusOK {
		return &opError{code: fmt.Sprintf("HTTP %d", status), msg: snippet(raw)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer.Data, out); err != nil {
		return &opError{code: "bad response", msg: err.Error()}
	}
	return nil
}

// fetch sends req and returns the status and the body, read up to
// maxResponseBytes.
func (c *client) fetch(req *http.Request) (int, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode, raw, err
}

// getJSON fetches a JSON document from path on the server.
func (c *client) getJSON(ctx context.Context, pathAndQuery string, out any) error {
	u, err := c.base.Parse(pathAndQuery)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	status, raw, err := c.fetch(req)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		var answer struct{ Errors []gqlError }
		if json.Unmarshal(raw, &answer) == nil && len(answer.Errors) > 0 && answer.Errors[0].Extensions.Code != "" {
			return answer.Errors[0].opError()
		}
		return &opError{code: fmt.Sprintf("HTTP %d", status), msg: snippet(raw)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &opError{code: "bad response", msg: err.Error()}
	}
	return nil
}

// download fetches an image by its signed URL and returns its size. The URL
// must be on this machine, as the target is.
func (c *client) download(ctx context.Context, rawURL string) (int64, error) {
	if _, err := checkLoopback(rawURL); err != nil {
		return 0, &opError{code: "image URL not on this machine", msg: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, &opError{code: fmt.Sprintf("HTTP %d", resp.StatusCode), msg: "downloading " + rawURL}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "image/") || n == 0 {
		return n, &opError{code: "not an image", msg: fmt.Sprintf("%d bytes of %q", n, ct)}
	}
	return n, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

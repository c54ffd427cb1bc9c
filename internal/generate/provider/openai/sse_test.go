package openai

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadEvents(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []string // "name=data"
	}{
		{"one event", "event: a\ndata: {\"x\":1}\n\n", []string{`a={"x":1}`}},
		{"no event name", "data: hi\n\n", []string{"message=hi"}},
		{"CRLF", "event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n", []string{"a=1", "b=2"}},
		{"lone CR", "event: a\rdata: 1\r\rdata: 2\r\r", []string{"a=1", "message=2"}},
		{"multi-line data", "data: {\"a\":\ndata: 1}\n\n", []string{"message={\"a\":\n1}"}},
		{"no space after colon", "event:a\ndata:1\n\n", []string{"a=1"}},
		{"only the first space goes", "data:  two\n\n", []string{"message= two"}},
		{"comments and keep-alives", ": ping\n\n:\ndata: 1\n: more\n\n", []string{"message=1"}},
		{"id and retry ignored", "id: 7\nretry: 100\ndata: 1\n\n", []string{"message=1"}},
		{"event without data is not dispatched", "event: a\n\ndata: 1\n\n", []string{"message=1"}},
		{"name does not leak into the next event", "event: a\ndata: 1\n\ndata: 2\n\n", []string{"a=1", "message=2"}},
		{"unfinished event at the end is dropped", "data: 1\n\ndata: 2\n", []string{"message=1"}},
		{"empty data line", "data\n\n", []string{"message="}},
		{"blank lines only", "\n\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time, so that a CRLF split between reads is
			// met too.
			for _, r := range []io.Reader{strings.NewReader(tt.stream), iotest.OneByteReader(strings.NewReader(tt.stream))} {
				var got []string
				err := readEvents(r, func(name, data string) error {
					got = append(got, name+"="+data)
					return nil
				})
				if err != nil {
					t.Fatalf("readEvents: %v", err)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("events: got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestReadEventsStops(t *testing.T) {
	errStop := errors.New("stop")
	calls := 0
	err := readEvents(strings.NewReader("data: 1\n\ndata: 2\n\n"), func(string, string) error {
		calls++
		return errStop
	})
	if err != errStop || calls != 1 {
		t.Errorf("got %v after %d calls, want %v after 1", err, calls, errStop)
	}

	errRead := errors.New("connection reset")
	err = readEvents(io.MultiReader(strings.NewReader("data: 1\n"), iotest.ErrReader(errRead)), func(string, string) error { return nil })
	if !errors.Is(err, errRead) {
		t.Errorf("read failure: got %v, want %v", err, errRead)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		header     map[string]string
		want       time.Duration
		wantHinted bool
	}{
		{"none", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "3"}, 3 * time.Second, true},
		{"fraction", map[string]string{"Retry-After": "0.25"}, 250 * time.Millisecond, true},
		{"zero", map[string]string{"Retry-After": "0"}, 0, true},
		{"milliseconds win", map[string]string{"Retry-After": "3", "Retry-After-Ms": "120"}, 120 * time.Millisecond, true},
		{"date", map[string]string{"Retry-After": now.Add(5 * time.Second).Format(http.TimeFormat)}, 5 * time.Second, true},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, 0, true},
		{"negative", map[string]string{"Retry-After": "-4"}, 0, false},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"absurd", map[string]string{"Retry-After": "1e300"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			got, hinted := retryAfter(h, now)
			if got != tt.want || hinted != tt.wantHinted {
				t.Errorf("retryAfter: got %v, %v, want %v, %v", got, hinted, tt.want, tt.wantHinted)
			}
		})
	}
}

func TestWaitIsCapped(t *testing.T) {
	c := &Client{backoff: time.Second, maxWait: 5 * time.Second}
	tests := []struct {
		attempt int
		r       retryable
		lo, hi  time.Duration
	}{
		{1, retryable{}, 500 * time.Millisecond, time.Second},
		{3, retryable{}, 2 * time.Second, 4 * time.Second},
		{10, retryable{}, 2500 * time.Millisecond, 5 * time.Second},
		{62, retryable{}, 2500 * time.Millisecond, 5 * time.Second},
		{1, retryable{wait: 2 * time.Second, hinted: true}, 2 * time.Second, 2 * time.Second},
		{1, retryable{wait: time.Hour, hinted: true}, 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempt %d hint %v", tt.attempt, tt.r.wait), func(t *testing.T) {
			for range 20 {
				if got := c.wait(tt.attempt, &tt.r); got < tt.lo || got > tt.hi {
					t.Fatalf("wait: got %v, want between %v and %v", got, tt.lo, tt.hi)
				}
			}
		})
	}
}

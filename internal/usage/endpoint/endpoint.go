// Package endpoint delivers usage events to an analytics endpoint over
// HTTP: each batch is one POST of JSON ({"events": [...]}, see
// usage.Batch), taken when the endpoint answers 2xx.
package endpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/fastimage/api/internal/usage"
)

// DefaultTimeout bounds one delivery.
const DefaultTimeout = 10 * time.Second

// Client posts batches to one URL.
type Client struct {
	url  string
	http *http.Client
}

// New returns a Client posting to endpointURL, each delivery within timeout
// (DefaultTimeout when zero).
func New(endpointURL string, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{url: endpointURL, http: &http.Client{Timeout: timeout}}
}

var _ usage.Sink = (*Client)(nil)

// Send posts b and returns nil when the endpoint answers 2xx. Redirects are
// followed as http.Client does; any other answer is an error naming its
// status, never the body.
func (c *Client) Send(ctx context.Context, b usage.Batch) error {
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode batch: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("analytics endpoint: the URL does not parse")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fastimage-usage-forwarder")
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL may carry a key in its query: report the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("analytics endpoint: %w", err)
	}
	defer resp.Body.Close()
	// Read a little so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("analytics endpoint answered %s", resp.Status)
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsMessage is a graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// socket is a virtual user's one WebSocket, held open for the whole run as
// an editor tab holds it, carrying one subscription at a time. A reader
// goroutine answers pings and hands each subscription its messages.
type socket struct {
	conn    *websocket.Conn
	writeMu sync.Mutex
	nextID  int

	mu   sync.Mutex
	subs map[string]chan wsMessage
	err  error         // why the reader stopped
	done chan struct{} // closed when the reader stops
}

// dialSocket opens a graphql-transport-ws socket to base and signs it in
// with token.
func dialSocket(ctx context.Context, base *url.URL, token string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*socket, error) {
	u := *base.JoinPath("/graphql")
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	d := websocket.Dialer{
		NetDialContext:   dial,
		Subprotocols:     []string{"graphql-transport-ws"},
		HandshakeTimeout: 30 * time.Second,
	}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			return nil, &opError{code: fmt.Sprintf("HTTP %d", resp.StatusCode), msg: "WebSocket upgrade refused"}
		}
		return nil, err
	}
	s := &socket{conn: conn, subs: map[string]chan wsMessage{}, done: make(chan struct{})}
	init, _ := json.Marshal(map[string]string{"token": token})
	if err := s.write(wsMessage{Type: "connection_init", Payload: init}); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ack wsMessage
	if err := conn.ReadJSON(&ack); err != nil {
		conn.Close()
		return nil, closeError(err)
	}
	if ack.Type != "connection_ack" {
		conn.Close()
		return nil, &opError{code: "no connection_ack", msg: "got " + ack.Type}
	}
	_ = conn.SetReadDeadline(time.Time{})
	go s.read()
	return s, nil
}

// closeError turns a WebSocket close frame into its code, e.g. "close 4401".
func closeError(err error) error {
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
		return &opError{code: "close " + strconv.Itoa(ce.Code), msg: ce.Text}
	}
	return err
}

func (s *socket) write(m wsMessage) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteJSON(m)
}

func (s *socket) read() {
	defer close(s.done)
	for {
		var m wsMessage
		if err := s.conn.ReadJSON(&m); err != nil {
			s.mu.Lock()
			s.err = closeError(err)
			s.mu.Unlock()
			return
		}
		switch m.Type {
		case "ping":
			if err := s.write(wsMessage{Type: "pong"}); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				s.conn.Close()
				return
			}
		case "next", "error", "complete":
			s.mu.Lock()
			ch := s.subs[m.ID]
			s.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				case <-time.After(30 * time.Second):
					// The subscriber stopped listening; drop the rest.
				}
			}
		}
	}
}

// broken reports why the socket can no longer be used, or nil.
func (s *socket) broken() error {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err == nil {
			return errors.New("socket closed")
		}
		return s.err
	default:
		return nil
	}
}

func (s *socket) close() {
	_ = s.conn.Close()
	<-s.done
}

// subscribe starts an operation and returns its messages and a function
// that stops it (sending complete if it is still running).
func (s *socket) subscribe(query string, vars map[string]any) (<-chan wsMessage, func(), error) {
	s.mu.Lock()
	s.nextID++
	id := strconv.Itoa(s.nextID)
	ch := make(chan wsMessage, 64)
	s.subs[id] = ch
	s.mu.Unlock()
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	stop := func() {
		s.mu.Lock()
		_, running := s.subs[id]
		delete(s.subs, id)
		s.mu.Unlock()
		if running {
			_ = s.write(wsMessage{ID: id, Type: "complete"})
		}
	}
	if err := s.write(wsMessage{ID: id, Type: "subscribe", Payload: payload}); err != nil {
		stop()
		return nil, nil, err
	}
	return ch, stop, nil
}

// finished forgets a subscription the server completed.
func (s *socket) finished(id string) {
	s.mu.Lock()
	delete(s.subs, id)
	s.mu.Unlock()
}

// generationEvent is what the tool selects of a GenerationEvent.
type generationEvent struct {
	Seq       int     `json:"seq"`
	Kind      string  `json:"kind"`
	OutputURL *string `json:"outputUrl"`
	ErrorCode *string `json:"errorCode"`
}

const followSubscription = `subscription Follow($id: ID!) {
  generationEvents(id: $id) { seq kind outputUrl errorCode }
}`

// follow subscribes to a generation's events and waits for its final one,
// returning the URL of its first output. A generation that ends FAILED or
// CANCELED fails the operation with its errorCode.
func (s *socket) follow(ctx context.Context, generationID string) (string, error) {
	ch, stop, err := s.subscribe(followSubscription, map[string]any{"id": generationID})
	if err != nil {
		return "", err
	}
	defer stop()
	var output string
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-s.done:
			return "", s.broken()
		case m := <-ch:
			switch m.Type {
			case "error":
				s.finished(m.ID)
				var errs []gqlError
				if json.Unmarshal(m.Payload, &errs) == nil && len(errs) > 0 {
					return "", errs[0].opError()
				}
				return "", &opError{code: "subscription error", msg: snippet(m.Payload)}
			case "complete":
				s.finished(m.ID)
				return "", &opError{code: "completed before the final event", msg: generationID}
			}
			var next struct {
				Data *struct {
					GenerationEvents generationEvent `json:"generationEvents"`
				} `json:"data"`
				Errors []gqlError `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &next); err != nil {
				return "", &opError{code: "bad response", msg: err.Error()}
			}
			if len(next.Errors) > 0 {
				return "", next.Errors[0].opError()
			}
			if next.Data == nil {
				return "", &opError{code: "bad response", msg: "an event without data"}
			}
			e := next.Data.GenerationEvents
			switch e.Kind {
			case "OUTPUT":
				if output == "" && e.OutputURL != nil {
					output = *e.OutputURL
				}
			case "SUCCEEDED":
				if output == "" {
					return "", &opError{code: "succeeded without an output", msg: generationID}
				}
				return output, nil
			case "FAILED", "CANCELED":
				code := e.Kind
				if e.ErrorCode != nil {
					code += " " + *e.ErrorCode
				}
				return "", &opError{code: "generation " + code, msg: generationID}
			}
		}
	}
}

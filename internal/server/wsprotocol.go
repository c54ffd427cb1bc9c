package server

import (
	"encoding/json"
	"strconv"
	"sync"
)

// Close codes of graphql-transport-ws
// (github.com/enisdenjo/graphql-ws, PROTOCOL.md). The reference client
// retries after 4408 and gives up after the others, as it does after any
// 1xxx protocol error — so each must be the right one.
const (
	closeBadRequest      = 4400 // a message the protocol does not allow
	closeUnauthorized    = 4401 // subscribe before connection_ack
	closeInitTimeout     = 4408 // no connection_init in time
	closeDuplicateID     = 4409 // subscribe with an id already running
	closeTooManyInits    = 4429 // a second connection_init
	closeProtocolError   = 1002 // legacy graphql-ws has no codes of its own
	closeTryAgainLater   = 1013 // RFC 6455 registry: retry; the reference client reconnects
	subprotoTransportWS  = "graphql-transport-ws"
	reasonInitTimeout    = "Connection initialisation timeout"
	reasonBadRequest     = "Invalid message received"
	reasonUnauthorized   = "Unauthorized"
	reasonTooManyInits   = "Too many initialisation requests"
	gqlgenUnknownOpID    = "-" // never an id we hand to gqlgen
	messageInit          = "connection_init"
	messageAck           = "connection_ack"
	messageComplete      = "complete"
	messageError         = "error"
	transportWSSubscribe = "subscribe"
	legacyStart          = "start"
	legacyStop           = "stop"
)

// wsProtocol enforces, on one socket, the rules of its subprotocol that
// gqlgen's transport leaves out; the adapter passes it every message read
// and written. gqlgen closes an init time-out and a second connection_init
// with 1002, runs a subscribe sent before connection_ack into a 1002 too,
// and starts a second operation under an id already running, which then
// overwrites the first one's cancel so that the first can never be stopped.
//
// Operation ids are renamed on the way in: gqlgen sees a fresh number for
// every operation and never the client's id, which comes back on the way
// out. So an id the client reuses once its operation ended can never reach
// an operation of the past (gqlgen forgets an ended id only after it has
// sent its complete), and messages gqlgen still sends for an operation that
// already ended — a complete after an error, or after the client's own
// complete — are dropped instead of ending the client's new operation of the
// same id.
type wsProtocol struct {
	transportWS bool // graphql-transport-ws; legacy graphql-ws otherwise

	mu       sync.Mutex
	initSeen bool
	acked    bool
	closed   bool // the adapter closed the socket (e.g. init time-out)
	next     uint64
	byClient map[string]string // client id → gqlgen id, while it runs
	byServer map[string]string // gqlgen id → client id, while it runs
	pending  []byte            // a legacy start held back behind the stop of the operation it replaces
}

func newWSProtocol(subprotocol string) *wsProtocol {
	return &wsProtocol{
		transportWS: subprotocol == subprotoTransportWS,
		byClient:    make(map[string]string),
		byServer:    make(map[string]string),
	}
}

// wsFrame is the envelope both subprotocols share.
type wsFrame struct {
	ID      *string         `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// verdict is what to do with one message from the client.
type verdict struct {
	pass   []byte // hand these bytes to gqlgen
	reply  []byte // answer the client with these bytes, and read on
	code   int    // close the socket with code and reason
	reason string
}

// takePending returns a message held back for gqlgen, if any.
func (p *wsProtocol) takePending() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.pending
	p.pending = nil
	return b
}

// initTimedOut reports whether the socket must be closed because no
// connection_init came in time, and with which code.
func (p *wsProtocol) initTimedOut() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.initSeen || p.closed {
		return 0, false
	}
	p.closed = true
	if p.transportWS {
		return closeInitTimeout, true
	}
	return closeProtocolError, true
}

// inbound checks one message read from the client. A message that is
// neither passed, answered nor closed on is dropped (read on).
func (p *wsProtocol) inbound(data []byte) verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return verdict{code: closeProtocolError, reason: "closed"} // already closed; the code is not sent again
	}
	var f wsFrame
	if err := json.Unmarshal(data, &f); err != nil {
		if p.transportWS {
			return verdict{code: closeBadRequest, reason: reasonBadRequest}
		}
		return verdict{pass: data} // gqlgen's answer to legacy clients stays
	}
	if p.transportWS {
		return p.inboundTransportWS(f, data)
	}
	return p.inboundLegacy(f, data)
}

func (p *wsProtocol) inboundTransportWS(f wsFrame, data []byte) verdict {
	switch f.Type {
	case messageInit:
		if p.initSeen {
			return verdict{code: closeTooManyInits, reason: reasonTooManyInits}
		}
		p.initSeen = true
		return verdict{pass: data}
	case "ping":
		if !p.initSeen { // gqlgen would take it for the init and close with 1002
			return verdict{reply: []byte(`{"type":"pong"}`)}
		}
		return verdict{pass: data}
	case "pong":
		if !p.initSeen {
			return verdict{}
		}
		return verdict{pass: data}
	case transportWSSubscribe:
		if !p.acked {
			return verdict{code: closeUnauthorized, reason: reasonUnauthorized}
		}
		if f.ID == nil || *f.ID == "" || !isObject(f.Payload) {
			return verdict{code: closeBadRequest, reason: reasonBadRequest}
		}
		if _, running := p.byClient[*f.ID]; running {
			return verdict{code: closeDuplicateID, reason: "Subscriber for " + *f.ID + " already exists"}
		}
		return verdict{pass: p.start(f)}
	case messageComplete:
		if !p.acked {
			return verdict{} // nothing can be running
		}
		if f.ID == nil || *f.ID == "" {
			return verdict{code: closeBadRequest, reason: reasonBadRequest}
		}
		// The client may reuse the id at once; gqlgen's own complete for it
		// will be dropped, as the protocol wants nothing more for it.
		return verdict{pass: p.stop(f, true)}
	default:
		return verdict{code: closeBadRequest, reason: reasonBadRequest}
	}
}

// isObject reports whether raw is a JSON object: a subscribe's payload is
// an operation ({"query": …}), never a string, a list or nothing.
func isObject(raw json.RawMessage) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(raw, &obj) == nil && obj != nil
}

func (p *wsProtocol) inboundLegacy(f wsFrame, data []byte) verdict {
	if f.ID == nil || !p.acked || (f.Type != legacyStart && f.Type != legacyStop) {
		if f.Type == messageInit {
			p.initSeen = true
		}
		return verdict{pass: data} // gqlgen's handling of legacy clients stays
	}
	switch f.Type {
	case legacyStart:
		if _, running := p.byClient[*f.ID]; running {
			// As the legacy reference server does: the new operation
			// replaces the old one, which stops first.
			stop := p.stop(wsFrame{ID: f.ID, Type: legacyStop}, true)
			p.pending = p.start(f)
			return verdict{pass: stop}
		}
		return verdict{pass: p.start(f)}
	default: // stop; legacy clients expect gqlgen's complete after it
		return verdict{pass: p.stop(f, false)}
	}
}

// start gives the operation f starts a fresh gqlgen id and returns the
// message as gqlgen must see it.
func (p *wsProtocol) start(f wsFrame) []byte {
	p.next++
	internal := strconv.FormatUint(p.next, 10)
	p.byClient[*f.ID] = internal
	p.byServer[internal] = *f.ID
	return p.rename(f, internal)
}

// stop returns the client's stop of f as gqlgen must see it; forget drops
// the id at once, so that nothing more is sent for it.
func (p *wsProtocol) stop(f wsFrame, forget bool) []byte {
	internal, ok := p.byClient[*f.ID]
	if !ok {
		return p.rename(f, gqlgenUnknownOpID)
	}
	if forget {
		delete(p.byClient, *f.ID)
		delete(p.byServer, internal)
	}
	return p.rename(f, internal)
}

func (p *wsProtocol) rename(f wsFrame, id string) []byte {
	f.ID = &id
	b, err := json.Marshal(f)
	if err != nil {
		panic(err) // a RawMessage that was valid JSON stays valid
	}
	return b
}

// outbound rewrites one message gqlgen writes, as JSON: the client's id
// back in place of gqlgen's. It reports false for a message to drop.
func (p *wsProtocol) outbound(data []byte) ([]byte, bool) {
	var f wsFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return data, true
	}
	client, keep := p.route(f.ID, f.Type)
	if !keep {
		return nil, false
	}
	if f.ID == nil {
		return data, true
	}
	return p.rename(f, client), true
}

// route takes the id (nil if none) and type of a message gqlgen writes and
// returns the client's id for it. It reports false for a message to drop:
// one for an operation that has already ended for the client.
func (p *wsProtocol) route(id *string, typ string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if typ == messageAck {
		p.acked = true
	}
	if id == nil {
		return "", true
	}
	client, ok := p.byServer[*id]
	if !ok {
		return "", false
	}
	if typ == messageComplete || typ == messageError {
		// Forgotten before it is sent, so that the client may reuse the id
		// as soon as it reads this.
		delete(p.byServer, *id)
		if p.byClient[client] == *id {
			delete(p.byClient, client)
		}
	}
	return client, true
}

package server

import (
	"encoding/json"
)

// The two GraphQL-over-WebSocket subprotocols: graphql-transport-ws
// (github.com/enisdenjo/graphql-ws, PROTOCOL.md) and the legacy graphql-ws of
// subscriptions-transport-ws. A client that names neither gets the legacy
// one, as gqlgen's transport did.
const (
	subprotoTransportWS = "graphql-transport-ws"
	subprotoLegacy      = "graphql-ws"
)

// Close codes of graphql-transport-ws. The reference client retries after
// 4408 and gives up after the others, as it does after any 1xxx protocol
// error — so each must be the right one.
const (
	closeBadRequest    = 4400 // a message the protocol does not allow
	closeUnauthorized  = 4401 // subscribe before connection_ack
	closeInitTimeout   = 4408 // no connection_init in time
	closeDuplicateID   = 4409 // subscribe with an id already running
	closeTooManyInits  = 4429 // a second connection_init
	closeProtocolError = 1002 // legacy graphql-ws has no codes of its own
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeTryAgainLater = 1013 // RFC 6455 registry: retry; the reference client reconnects

	reasonInitTimeout  = "Connection initialisation timeout"
	reasonBadRequest   = "Invalid message received"
	reasonUnauthorized = "Unauthorized"
	reasonTooManyInits = "Too many initialisation requests"
	reasonShutdown     = "server shutting down"
	reasonInternal     = "Internal server error"
)

// Message types. Where the subprotocols name one thing differently, the
// legacy name is second.
const (
	msgInit      = "connection_init"
	msgAck       = "connection_ack"
	msgSubscribe = "subscribe" // legacy: start
	msgComplete  = "complete"  // from the client; legacy: stop
	msgNext      = "next"      // legacy: data
	msgError     = "error"
	msgPing      = "ping"
	msgPong      = "pong"

	legacyStart     = "start"
	legacyStop      = "stop"
	legacyData      = "data"
	legacyKeepAlive = "ka"
	legacyConnError = "connection_error"
	legacyTerminate = "connection_terminate"
)

// wsFrame is the envelope both subprotocols share, in both directions.
type wsFrame struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// encodeFrame encodes one message to the client.
func encodeFrame(id, typ string, payload json.RawMessage) []byte {
	b, err := json.Marshal(wsFrame{ID: id, Type: typ, Payload: payload})
	if err != nil {
		panic(err) // payloads are encoded JSON already
	}
	return b
}

// isObject reports whether raw is a JSON object: a subscribe's payload is
// an operation ({"query": …}), never a string, a list or nothing.
func isObject(raw json.RawMessage) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(raw, &obj) == nil && obj != nil
}

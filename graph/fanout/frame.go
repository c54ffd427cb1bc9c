package fanout

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/99designs/gqlgen/graphql"
)

// AppendResponse appends resp as the JSON a transport sends, the same
// bytes as json.Marshal(resp), but copies resp.Data as it is: gqlgen's
// executor wrote it as compact, valid JSON, and subscribers sharing one
// execution share those bytes, so encoding/json's check and compaction of
// a RawMessage would only repeat, once per subscriber, work done once per
// event. Errors and extensions, small and per subscriber, go through
// encoding/json.
func AppendResponse(dst []byte, resp *graphql.Response) ([]byte, error) {
	return appendResponse(dst, resp, Extension{})
}

// Extension is one entry of a response's extensions that a transport
// writes itself, not from resp.Extensions: the same value for every
// response of an operation (its cost), which then needs no map of its own
// for as long as the operation lasts.
type Extension struct {
	Name  string
	Value JSONAppender // nil: none
}

func appendResponse(dst []byte, resp *graphql.Response, only Extension) ([]byte, error) {
	if resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
		// Incremental delivery (@defer) is rare: encoding/json writes it.
		b, err := json.Marshal(resp)
		return append(dst, b...), err
	}
	dst = append(dst, '{')
	if len(resp.Errors) > 0 {
		b, err := json.Marshal(resp.Errors)
		if err != nil {
			return dst, err
		}
		dst = append(append(dst, `"errors":`...), b...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"data":`...)
	if len(resp.Data) > 0 {
		dst = appendHTMLEscaped(dst, resp.Data)
	} else {
		dst = append(dst, "null"...)
	}
	switch {
	case len(resp.Extensions) > 0:
		var err error
		if dst, err = appendExtensions(append(dst, `,"extensions":`...), resp.Extensions); err != nil {
			return dst, err
		}
	case only.Value != nil:
		dst = appendString(append(dst, `,"extensions":{`...), only.Name)
		var err error
		if dst, err = only.Value.AppendJSON(append(dst, ':')); err != nil {
			return dst, err
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

// JSONAppender is an extension value that writes its own JSON, the bytes
// encoding/json would write for it: one that is the same in every response
// of an operation (its cost) then costs no reflection per event and
// subscriber.
type JSONAppender interface {
	AppendJSON(dst []byte) ([]byte, error)
}

// appendExtensions appends ext as encoding/json writes a map: keys sorted.
func appendExtensions(dst []byte, ext map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(appendString(dst, k), ':')
		if a, ok := ext[k].(JSONAppender); ok {
			var err error
			if dst, err = a.AppendJSON(dst); err != nil {
				return dst, err
			}
			continue
		}
		b, err := json.Marshal(ext[k])
		if err != nil {
			return dst, err
		}
		dst = append(dst, b...)
	}
	return append(dst, '}'), nil
}

// appendMessageHead appends a message up to its payload.
func appendMessageHead(dst []byte, id, typ string) []byte {
	dst = append(dst, '{')
	if id != "" {
		dst = appendString(append(dst, `"id":`...), id)
		dst = append(dst, ',')
	}
	return appendString(append(dst, `"type":`...), typ)
}

// AppendResponseMessage appends a WebSocket message of either GraphQL
// subprotocol carrying resp, {"id":…,"type":…,"payload":…} (the id left
// out when empty), the bytes encoding/json would write for it, with the
// payload written by AppendResponse in place: the transport writes one of
// these for every event and subscriber. A response without extensions gets
// only as its one extension, when only has a value.
func AppendResponseMessage(dst []byte, id, typ string, resp *graphql.Response, only Extension) ([]byte, error) {
	dst, err := appendResponse(append(appendMessageHead(dst, id, typ), `,"payload":`...), resp, only)
	return append(dst, '}'), err
}

// appendString appends s as a JSON string, as encoding/json writes it.
// Ids are chosen by clients: anything but plain printable ASCII goes
// through encoding/json.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendHTMLEscaped appends data, valid JSON, escaping <, >, & and U+2028/9
// inside strings as encoding/json does for a RawMessage (gqlgen writes them
// as they are), so that frames stay byte for byte what they were. Most
// events hold none, and are copied as they are.
func appendHTMLEscaped(dst, data []byte) []byte {
	if !needsHTMLEscape(data) {
		return append(dst, data...)
	}
	b := bytes.NewBuffer(dst)
	json.HTMLEscape(b, data)
	return b.Bytes()
}

// htmlSpecial marks the bytes that may need escaping: <, > and &, and
// 0xE2, which begins U+2028 and U+2029 in UTF-8.
var htmlSpecial = [256]bool{'<': true, '>': true, '&': true, 0xE2: true}

// needsHTMLEscape reports whether data may hold what appendHTMLEscaped
// escapes: one pass over the bytes, as every subscriber's frame is
// checked (bytes.ContainsAny takes a slow path for a set with runes
// beyond ASCII).
func needsHTMLEscape(data []byte) bool {
	for _, c := range data {
		if htmlSpecial[c] {
			return true
		}
	}
	return false
}

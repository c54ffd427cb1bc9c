// Package relay implements the Relay conventions of the public API: opaque,
// type-tagged global ids and opaque connection cursors.
package relay

import (
	"encoding/base64"
	"strings"

	"github.com/fastimage/api/internal/apperr"
)

// ID returns the global id of the object of type typ (a GraphQL type name)
// with the given key. It is opaque to clients: base64url of "Type:key".
func ID(typ, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + key))
}

// ParseID splits a global id into its type name and key.
// Returns Validation when id was not made by ID. Only the spelling ID
// writes is accepted: the base64 decoder alone would also take an id with
// line breaks in it or with other bits in its last character, and one
// object must not have two ids that pass for different ones.
func ParseID(id string) (typ, key string, err error) {
	raw, derr := base64.RawURLEncoding.DecodeString(id)
	if derr == nil {
		typ, key, ok := strings.Cut(string(raw), ":")
		if ok && typ != "" && key != "" && ID(typ, key) == id {
			return typ, key, nil
		}
	}
	return "", "", apperr.Errorf(apperr.Validation, "%q is not an id this API issued; use the id fields it returns.", truncate(id, 64))
}

// KeyOf returns the key of a global id of type typ.
// Returns NotFound when the id is of another type (an id of the wrong kind
// names no object of this kind) and Validation when it is malformed.
func KeyOf(id, typ string) (string, error) {
	t, key, err := ParseID(id)
	if err != nil {
		return "", err
	}
	if t != typ {
		return "", apperr.Errorf(apperr.NotFound, "No %s has this id.", typ)
	}
	return key, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Node is any object the API can fetch by its global id. The GraphQL layer
// binds its Node interface to this, so that domain types need no marker
// method.
type Node interface{}

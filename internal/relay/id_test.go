package relay_test

import (
	"strings"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/relay"
)

func TestIDRoundTrip(t *testing.T) {
	id := relay.ID("Work", "0190f5c2-0000-7000-8000-000000000001")
	typ, key, err := relay.ParseID(id)
	if err != nil || typ != "Work" || key != "0190f5c2-0000-7000-8000-000000000001" {
		t.Fatalf("ParseID(%q) = %q, %q, %v", id, typ, key, err)
	}
	if _, err := relay.KeyOf(id, "User"); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("KeyOf with the wrong type: got code %v, want NOT_FOUND", apperr.CodeOf(err))
	}
}

func TestParseIDRejectsForeignIDs(t *testing.T) {
	for _, id := range []string{"", "not base64!", relay.ID("", "x")[:2], "V29yaw"} {
		if _, _, err := relay.ParseID(id); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("ParseID(%q): got code %v, want VALIDATION", id, apperr.CodeOf(err))
		}
	}
}

// An id is refused in any spelling but the one ID writes: the base64
// decoder skips line breaks and ignores the unused bits of the last
// character, so before the fix each of these named Work "xy". Found by
// FuzzParseID.
func TestParseIDRefusesOtherSpellings(t *testing.T) {
	id := relay.ID("Work", "xy") // V29yazp4eQ: the last character holds 2 bits of data
	last := strings.IndexByte(base64URL, id[len(id)-1])
	for _, other := range []string{id + "\n", id[:4] + "\r\n" + id[4:], id[:len(id)-1] + string(base64URL[last+1])} {
		if _, _, err := relay.ParseID(other); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("ParseID(%q): got %v, want VALIDATION", other, err)
		}
	}
	if typ, key, err := relay.ParseID(id); err != nil || typ != "Work" || key != "xy" {
		t.Errorf("ParseID(%q) = %q, %q, %v", id, typ, key, err)
	}
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

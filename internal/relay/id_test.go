package relay_test

import (
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

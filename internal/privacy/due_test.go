package privacy

import (
	"testing"
	"time"
)

func TestDueDateAcrossMonthEnds(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, c := range []struct{ received, due string }{
		{"2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"},
		{"2028-01-31T10:00:00Z", "2028-02-29T10:00:00Z"}, // leap year
		{"2026-01-30T23:59:59Z", "2026-02-28T23:59:59Z"},
		{"2026-01-28T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"2026-03-31T12:00:00Z", "2026-04-30T12:00:00Z"},
		{"2026-04-30T12:00:00Z", "2026-05-30T12:00:00Z"},
		{"2026-12-31T08:00:00Z", "2027-01-31T08:00:00Z"},
		{"2026-12-15T08:00:00Z", "2027-01-15T08:00:00Z"},
		{"2026-08-31T22:30:00-05:00", "2026-10-01T03:30:00Z"}, // in UTC: 1 September
	} {
		if got := DueDate(day(c.received)); !got.Equal(day(c.due)) {
			t.Errorf("received %s: due %s, want %s", c.received, got.Format(time.RFC3339), c.due)
		}
	}
	if got, want := Extended(DueDate(day("2026-01-31T10:00:00Z"))), day("2026-04-28T10:00:00Z"); !got.Equal(want) {
		t.Errorf("extended from 31 January's due date: %s, want %s", got, want)
	}
}

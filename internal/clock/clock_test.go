package clock_test

import (
	"testing"
	"time"

	"github.com/fastimage/api/internal/clock"
)

func TestFakeMovesOnlyWhenAdvanced(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f := clock.NewFake(start)
	if got := f.Now(); !got.Equal(start) {
		t.Fatalf("got %v, want %v", got, start)
	}
	f.Advance(90 * time.Minute)
	if got, want := f.Now(), start.Add(90*time.Minute); !got.Equal(want) {
		t.Fatalf("after Advance: got %v, want %v", got, want)
	}
}

func TestOrDefaultsToSystem(t *testing.T) {
	if _, ok := clock.Or(nil).(clock.System); !ok {
		t.Errorf("Or(nil) is %T, want clock.System", clock.Or(nil))
	}
	f := clock.NewFake(time.Time{})
	if got := clock.Or(f); got != clock.Clock(f) {
		t.Errorf("Or(fake) is %v, want the fake", got)
	}
}

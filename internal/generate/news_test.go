package generate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/events"
)

// An event rides in its notification whole: the watchers that take it
// from there see what a read of the table would have given them.
func TestEventNewsCarriesTheEvent(t *testing.T) {
	gen := uuid.New()
	at := time.Date(2026, 11, 30, 14, 0, 0, 123456000, time.UTC)
	for _, tt := range []struct {
		name  string
		data  EventData
		ended bool
	}{
		{"progress", Progress{Fraction: 0.5, Step: 1, TotalSteps: 2, Message: `50% "done" <b>`, PreviewKey: "previews/x.webp"}, false},
		{"final", Succeeded{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			ev := &Event{GenerationID: gen, Seq: 7, Kind: tt.data.Kind(), Payload: raw, CreatedAt: at}
			got, ok := parseNews(gen, eventNews(ev))
			if !ok {
				t.Fatalf("news %q carried no event", eventNews(ev))
			}
			want := *ev
			want.GenerationEnded = tt.ended
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("event from news = %+v, want %+v", *got, want)
			}
		})
	}
}

// An event too big for a notification says only its seq, and the watchers
// read the table instead of failing the transaction that wrote it.
func TestEventNewsOfABigEventIsItsSeq(t *testing.T) {
	raw, _ := json.Marshal(Progress{Message: strings.Repeat("x", events.MaxNews)})
	ev := &Event{GenerationID: uuid.New(), Seq: 12, Kind: EventProgress, Payload: raw, CreatedAt: time.Now()}
	if news := eventNews(ev); news != "12" {
		t.Fatalf("news of a %d-byte event = %.40q…, want just its seq", len(raw), news)
	}
	if _, ok := parseNews(ev.GenerationID, "12"); ok {
		t.Fatal("a seq alone parsed as an event")
	}
}

package graph

import (
	"encoding/json"
	"testing"

	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/feed"
	"github.com/fastimage/api/internal/work"
)

// Entries the SQL trigger wrote before the feed was written from Go carry
// no cause. A replay from seq 0 must read them (cause null), not stop there.
func TestFeedModelReadsEntriesOfEveryAge(t *testing.T) {
	spend := model.CreditChangeCauseSpend
	tests := []struct {
		name      string
		kind      feed.Kind
		payload   string
		wantCause *model.CreditChangeCause
		wantErr   bool
	}{
		{name: "credits before causes", kind: feed.KindCredits, payload: `{"held": 0, "balance": 10, "available": 10}`},
		{name: "credits with a cause", kind: feed.KindCredits, payload: `{"held": 0, "balance": 10, "available": 10, "cause": "SPEND"}`, wantCause: &spend},
		{name: "credits with an unknown cause", kind: feed.KindCredits, payload: `{"balance": 1, "cause": "BRIBE"}`, wantErr: true},
		{name: "generation before the change", kind: feed.KindGeneration,
			payload: `{"status": "succeeded", "workId": "0191a0d2-0000-7000-8000-000000000002", "generationId": "0191a0d2-0000-7000-8000-000000000001"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := feedModel(feed.Entry{Seq: 7, Kind: tt.kind, Payload: json.RawMessage(tt.payload)})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", m)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want the entry", err)
			}
			switch tt.kind {
			case feed.KindCredits:
				if m.Credits == nil || m.Credits.Balance != 10 || m.Credits.Available != 10 {
					t.Errorf("credits: got %+v, want balance and available 10", m.Credits)
				}
				if (m.Cause == nil) != (tt.wantCause == nil) || (m.Cause != nil && *m.Cause != *tt.wantCause) {
					t.Errorf("cause: got %v, want %v", m.Cause, tt.wantCause)
				}
			case feed.KindGeneration:
				if m.Status == nil || *m.Status != work.StatusSucceeded || m.GenerationID == nil || m.WorkID == nil {
					t.Errorf("got %+v, want status succeeded and both ids", m)
				}
			}
		})
	}
}

package drills

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// audit is what the database says about a drill's generations once the
// drill is over.
type audit struct {
	statuses map[string]int // generation status → how many
	stuck    int            // not in a final status
	gaps     int            // events whose seq does not follow the one before
	finals   int            // generations whose final event is missing or repeated
	holds    int            // holds not captured (success) or released (otherwise) as they should be
	spends   int            // spend entries more or fewer than the successes, or not their cost
	records  map[uuid.UUID][]genEvent
	problems []string
}

func (a *audit) problem(format string, args ...any) {
	if len(a.problems) < 10 {
		a.problems = append(a.problems, fmt.Sprintf(format, args...))
	}
}

// lost sums what the audit found wrong.
func (a *audit) lost() int { return a.stuck + a.gaps + a.finals + a.holds + a.spends }

// summary says what was checked and how it came out.
func (a *audit) summary() string {
	var st []string
	for s, n := range a.statuses {
		st = append(st, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(st)
	out := fmt.Sprintf("%s; stuck %d, seq gaps %d, final events wrong %d, holds wrong %d, spends wrong %d",
		strings.Join(st, ", "), a.stuck, a.gaps, a.finals, a.holds, a.spends)
	if len(a.problems) > 0 {
		out += "\n  " + strings.Join(a.problems, "\n  ")
	}
	return out
}

// auditGenerations checks, for each generation of one user: a final
// status, events numbered 1, 2, 3 … with exactly one final event, its hold
// captured at its cost on success and released otherwise; and that the
// user's ledger has one spend per success, of its cost.
func auditGenerations(t *testing.T, vdb *bun.DB, userID uuid.UUID, gens []uuid.UUID) *audit {
	t.Helper()
	ctx := context.Background()
	a := &audit{statuses: map[string]int{}, records: map[uuid.UUID][]genEvent{}}
	var successes, costs int64
	for _, id := range gens {
		var g struct {
			Status     string
			Cost       *int64
			HoldStatus *string
			Captured   *int64
		}
		if err := vdb.NewRaw(`SELECT g.status, g.cost, h.status AS hold_status, h.captured_amount AS captured
			FROM generations g LEFT JOIN credit_holds h ON h.id = g.hold_id WHERE g.id = ?`, id).Scan(ctx, &g); err != nil {
			t.Fatalf("read generation %s: %v", id, err)
		}
		a.statuses[g.Status]++
		var events []genEvent
		if err := vdb.NewRaw(`SELECT seq, kind FROM generation_events WHERE generation_id = ? ORDER BY seq`, id).Scan(ctx, &events); err != nil {
			t.Fatalf("read events of %s: %v", id, err)
		}
		a.records[id] = events
		for i, e := range events {
			if e.Seq != i+1 {
				a.gaps++
				a.problem("%s: event %d has seq %d", id, i+1, e.Seq)
				break
			}
		}
		finals := 0
		for _, e := range events {
			if e.final() {
				finals++
			}
		}
		switch g.Status {
		case "queued", "running":
			a.stuck++
			a.problem("%s: still %s", id, g.Status)
			continue
		case "succeeded":
			successes++
			if g.Cost != nil {
				costs += *g.Cost
			}
			if g.HoldStatus == nil || *g.HoldStatus != "captured" || g.Captured == nil || g.Cost == nil || *g.Captured != *g.Cost {
				a.holds++
				a.problem("%s: succeeded, its hold %v captured %v, cost %v", id, deref(g.HoldStatus), deref(g.Captured), deref(g.Cost))
			}
		default:
			if g.HoldStatus != nil && *g.HoldStatus != "released" {
				a.holds++
				a.problem("%s: %s, its hold %s", id, g.Status, *g.HoldStatus)
			}
		}
		if finals != 1 || len(events) == 0 || !events[len(events)-1].final() {
			a.finals++
			a.problem("%s: %d final events (%v)", id, finals, events)
		}
	}
	var spends struct{ N, Sum int64 }
	if err := vdb.NewRaw(`SELECT count(*) AS n, coalesce(-sum(amount), 0) AS sum FROM credit_entries WHERE user_id = ? AND kind = 'SPEND'`, userID).
		Scan(ctx, &spends); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	if spends.N != successes || spends.Sum != costs {
		a.spends += int(max(abs(spends.N-successes), 1))
		a.problem("ledger: %d spends of %d credits, want %d of %d", spends.N, spends.Sum, successes, costs)
	}
	return a
}

func deref[T any](p *T) any {
	if p == nil {
		return "none"
	}
	return *p
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// received checks what followers got against the record: every event once,
// in order.
func received(t *testing.T, a *audit, fs []*follower) (lost int, what string) {
	t.Helper()
	var missing, dup, disorder, unfinished int
	for _, f := range fs {
		m, d, o := compare(f.seen(), a.records[generationKey(t, f.gen)])
		missing, dup, disorder = missing+m, dup+d, disorder+o
		if !f.finished() {
			unfinished++
		}
		if m+d+o > 0 {
			a.problem("%s: subscriber got %v, record %v", f.gen, f.seen(), a.records[generationKey(t, f.gen)])
		}
	}
	return missing + dup + disorder + unfinished, fmt.Sprintf("subscribers: %d events missing, %d twice, %d out of order, %d never saw the end",
		missing, dup, disorder, unfinished)
}

package server_test

import (
	"context"
	"strings"
	"testing"
)

// A user's privacy requests through the API: a correction handled by an
// admin from the queue, an objection applied at once, a deletion that wants
// the password confirmed first; the audit trail tells every step.
func TestPrivacyRequestsThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := start(t, noWorkers())
	me, _ := mustSignUp(t, s, "private@example.com")
	admin, _ := mustSignUp(t, s, "admin@example.com")
	if _, err := s.db.ExecContext(context.Background(), "UPDATE users SET role = 'admin' WHERE email = 'admin@example.com'"); err != nil {
		t.Fatal(err)
	}

	var corr struct {
		RequestCorrection struct {
			Request struct{ ID, Status, DueAt string }
		}
	}
	me.must(`mutation { requestCorrection(input: {field: "a purchase record", value: "it was the 500 pack", note: "see receipt"}) { request { id status dueAt } } }`, nil, &corr)
	if corr.RequestCorrection.Request.Status != "VERIFIED" || corr.RequestCorrection.Request.DueAt == "" {
		t.Fatalf("new correction: %+v", corr.RequestCorrection.Request)
	}
	e := me.fails("VALIDATION", `mutation { requestCorrection(input: {field: "name", value: "Ada"}) { request { id } } }`, nil)
	if !strings.Contains(e.Message, "updateProfile") {
		t.Errorf("a correction of the name does not point at updateProfile: %q", e.Message)
	}
	me.must(`mutation { objectToProcessing(input: {purpose: ANALYTICS}) { request { status } } }`, nil, nil)
	me.must(`mutation { withdrawObjection(input: {purpose: MARKETING_EMAIL}) { request { status } } }`, nil, nil)
	me.must(`mutation { objectToProcessing(input: {purpose: MARKETING_EMAIL}) { request { status } } }`, nil, nil)
	me.fails("FORBIDDEN", `{ privacyRequestQueue { totalCount } }`, nil)

	var queue struct {
		PrivacyRequestQueue struct {
			Edges []struct{ Node struct{ ID, Kind string } }
		}
	}
	admin.must(`{ privacyRequestQueue { edges { node { id kind } } } }`, nil, &queue)
	if len(queue.PrivacyRequestQueue.Edges) != 1 || queue.PrivacyRequestQueue.Edges[0].Node.ID != corr.RequestCorrection.Request.ID {
		t.Fatalf("admin queue: %+v, want the correction only", queue)
	}
	admin.must(`mutation($id: ID!) { completeCorrection(input: {requestId: $id, resolution: "fixed the record"}) { request { status } } }`,
		map[string]any{"id": corr.RequestCorrection.Request.ID}, nil)

	// The sign-in proved the password; eleven minutes later it no longer
	// counts.
	if _, err := s.db.ExecContext(context.Background(), "UPDATE sessions SET password_confirmed_at = now() - interval '11 minutes'"); err != nil {
		t.Fatal(err)
	}
	e = me.fails("REAUTHENTICATION_REQUIRED", `mutation { requestAccountDeletion { request { id } } }`, nil)
	if !strings.Contains(e.Message, "confirmPassword") {
		t.Errorf("the refusal does not say how to confirm: %q", e.Message)
	}
	me.fails("INVALID_CREDENTIALS", `mutation { confirmPassword(input: {password: "not it"}) { confirmedAt } }`, nil)
	me.must(`mutation($pw: String!) { confirmPassword(input: {password: $pw}) { confirmedAt } }`, map[string]any{"pw": goodPassword}, nil)
	var del struct {
		RequestAccountDeletion struct{ Request struct{ ID, Status string } }
	}
	me.must(`mutation { requestAccountDeletion { request { id status } } }`, nil, &del)
	if del.RequestAccountDeletion.Request.Status != "VERIFIED" {
		t.Fatalf("deletion after confirming the password: %+v", del)
	}
	me.must(`mutation($id: ID!) { cancelPrivacyRequest(input: {requestId: $id}) { request { status } } }`,
		map[string]any{"id": del.RequestAccountDeletion.Request.ID}, nil)
	var v struct {
		Viewer struct {
			Objections      []string
			PrivacyRequests struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Kind, Status string
						AuditTrail   []struct{ Action, Actor string }
					}
				}
			}
		}
	}
	me.must(`{ viewer { objections privacyRequests { totalCount edges { node { kind status auditTrail { action actor } } } } } }`, nil, &v)
	if len(v.Viewer.Objections) != 2 || v.Viewer.PrivacyRequests.TotalCount != 5 {
		t.Fatalf("viewer's privacy: %+v", v.Viewer)
	}
	corrected := v.Viewer.PrivacyRequests.Edges[4].Node // newest first
	var steps []string
	for _, st := range corrected.AuditTrail {
		steps = append(steps, st.Action+"/"+strings.SplitN(st.Actor, ":", 2)[0])
	}
	if corrected.Kind != "CORRECTION" || corrected.Status != "COMPLETED" ||
		strings.Join(steps, " ") != "received/user verified/user in_progress/admin completed/admin" {
		t.Errorf("the correction and its trail: %s %s %v", corrected.Kind, corrected.Status, steps)
	}
}

package legal_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/actor"
	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/legal"
)

func newUser(t *testing.T, bdb *bun.DB, email string) actor.Actor {
	t.Helper()
	var id uuid.UUID
	if err := bdb.NewRaw("INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id", email).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return actor.Actor{UserID: id, Role: actor.RoleUser, Verified: true, Email: email}
}

func versions(docs []*legal.Document) string {
	var parts []string
	for _, d := range docs {
		s := string(d.Kind) + "@" + d.Version
		if !d.InEffect {
			s += "(later)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

var day = 24 * time.Hour

func TestPublishIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	public, _ := url.Parse("https://fastimage.example")
	docs := legal.BuiltIn(public)
	s := legal.New(bdb, docs, nil)
	for i, want := range []int{2, 0} {
		if n, err := s.Publish(ctx); err != nil || n != want {
			t.Fatalf("run %d: Publish = %d, %v; want %d", i+1, n, err, want)
		}
	}
	docs[0].URL = "https://fastimage.example/privacy-v1"
	if n, err := legal.New(bdb, docs, nil).Publish(ctx); err != nil || n != 1 {
		t.Fatalf("Publish of a changed URL = %d, %v; want 1", n, err)
	}
	got, err := s.Documents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if versions(got) != "privacy_policy@2026-11-27 terms@2026-11-27" || got[0].URL != "https://fastimage.example/privacy-v1" {
		t.Errorf("Documents = %s %+v", versions(got), got)
	}
}

func TestCurrentPendingAndAccept(t *testing.T) {
	t.Parallel()
	bdb := dbtest.New(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC))
	now := clk.Now()
	docs := []legal.Document{
		{Kind: legal.PrivacyPolicy, Version: "1", EffectiveAt: now.Add(-100 * day), URL: "https://x.example/p1"},
		{Kind: legal.PrivacyPolicy, Version: "2", EffectiveAt: now.Add(-10 * day), URL: "https://x.example/p2"},
		{Kind: legal.PrivacyPolicy, Version: "3", EffectiveAt: now.Add(20 * day), URL: "https://x.example/p3"},
		{Kind: legal.Terms, Version: "1", EffectiveAt: now.Add(-100 * day), URL: "https://x.example/t1"},
	}
	s := legal.New(bdb, docs, clk)
	if _, err := s.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Documents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := "privacy_policy@2 privacy_policy@3(later) terms@1"; versions(got) != want {
		t.Errorf("Documents = %s, want %s", versions(got), want)
	}

	// Signing up accepts what is in effect: nothing is pending.
	ada := newUser(t, bdb, "ada@example.com")
	if err := s.AcceptCurrent(ctx, bdb, ada.UserID); err != nil {
		t.Fatal(err)
	}
	// A sign-up for a taken address runs the statement for no one.
	if err := s.AcceptCurrent(ctx, bdb, uuid.Nil); err != nil {
		t.Fatal(err)
	}
	pending, err := s.Pending(ctx, ada, ada.UserID)
	if err != nil || len(pending) != 0 {
		t.Fatalf("Pending after sign-up = %s, %v; want none", versions(pending), err)
	}

	// Version 3 takes effect: it is pending until accepted.
	clk.Advance(21 * day)
	pending, err = s.Pending(ctx, ada, ada.UserID)
	if err != nil || versions(pending) != "privacy_policy@3" {
		t.Fatalf("Pending after version 3 took effect = %s, %v; want privacy_policy@3", versions(pending), err)
	}
	left, err := s.Accept(ctx, ada, []legal.Version{{Kind: legal.PrivacyPolicy, Version: "3"}})
	if err != nil || len(left) != 0 {
		t.Fatalf("Accept = %s, %v; want nothing left", versions(left), err)
	}
	// Accepting again changes nothing.
	if _, err := s.Accept(ctx, ada, []legal.Version{{Kind: legal.PrivacyPolicy, Version: "3"}}); err != nil {
		t.Fatal(err)
	}
	var accepted []string
	if err := bdb.NewRaw("SELECT kind || '@' || version FROM legal_acceptances WHERE user_id = ? ORDER BY 1", ada.UserID).Scan(ctx, &accepted); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(accepted, " "); got != "privacy_policy@2 privacy_policy@3 terms@1" {
		t.Errorf("acceptances %s", got)
	}

	// Unknown versions, and no versions, are refused.
	for _, vs := range [][]legal.Version{
		{{Kind: legal.Terms, Version: "9"}},
		{{Kind: "cookies", Version: "1"}},
		nil,
	} {
		_, err := s.Accept(ctx, ada, vs)
		var ae *apperr.Error
		if !errors.As(err, &ae) || ae.Code != apperr.Validation {
			t.Errorf("Accept(%v) = %v, want VALIDATION", vs, err)
		}
	}

	// Someone else's pending list is not theirs to read.
	bob := newUser(t, bdb, "bob@example.com")
	_, err = s.Pending(ctx, bob, ada.UserID)
	var ae *apperr.Error
	if !errors.As(err, &ae) || ae.Code != apperr.Forbidden {
		t.Errorf("Pending of another user = %v, want FORBIDDEN", err)
	}
	// Bob never signed up through AcceptCurrent: everything in effect waits.
	if pending, err := s.Pending(ctx, bob, bob.UserID); err != nil || versions(pending) != "privacy_policy@3 terms@1" {
		t.Errorf("Bob's pending = %s, %v", versions(pending), err)
	}
}

func TestLoadChecksTheFile(t *testing.T) {
	t.Parallel()
	good := `[{"kind": "privacy_policy", "version": "2027-01", "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://fastimage.example/privacy"},
		{"kind": "terms", "version": "2027-01", "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://fastimage.example/terms"}]`
	docs, err := legal.Load(strings.NewReader(good))
	if err != nil || len(docs) != 2 || docs[1].Kind != legal.Terms || !docs[0].EffectiveAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Load = %+v, %v", docs, err)
	}
	for name, bad := range map[string]string{
		"unknown kind":  `[{"kind": "cookies", "version": "1", "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://x.example"}]`,
		"no version":    `[{"kind": "terms", "version": "", "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://x.example"}]`,
		"no date":       `[{"kind": "terms", "version": "1", "url": "https://x.example"}]`,
		"bad url":       `[{"kind": "terms", "version": "1", "effectiveAt": "2027-01-01T00:00:00Z", "url": "javascript:alert(1)"}]`,
		"twice":         `[{"kind": "terms", "version": "1", "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://x.example"}, {"kind": "terms", "version": "1", "effectiveAt": "2027-02-01T00:00:00Z", "url": "https://x.example"}]`,
		"unknown field": `[{"kind": "terms", "version": "1", "effectiveAt": "2027-01-01T00:00:00Z", "url": "https://x.example", "text": "…"}]`,
		"not a list":    `{"kind": "terms"}`,
	} {
		if _, err := legal.Load(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: Load accepted %s", name, bad)
		}
	}
}

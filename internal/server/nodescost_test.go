package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/internal/relay"
)

// nodes(ids:) costs what it fetches: one lookup per id, not one field. With
// gqlgen's default estimate a list of 100 ids cost 2, so one request could
// alias nodes hundreds of times, each up to 100 ids of 8 types (8 queries),
// within the limit: 400 aliases ran 40,000 lookups and drained the pool.
func TestNodesCostGrowsWithIDs(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig()) // MaxQueryComplexity 10,000
	types := []string{"User", "Session", "SecurityEvent", "CreditEntry", "CreditHold", "Work", "Image", "Generation"}
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = relay.ID(types[i%len(types)], uuid.NewString())
	}
	vars := map[string]any{"ids": ids}
	c := s.client(t)

	var b strings.Builder
	b.WriteString("query($ids: [ID!]!) {")
	for i := range 400 {
		fmt.Fprintf(&b, " a%d: nodes(ids: $ids) { id }", i)
	}
	b.WriteString(" }")
	if costly := c.do(b.String(), vars); costly.code() != "QUERY_TOO_COMPLEX" || costly.HasData {
		t.Errorf("400 × nodes(100 ids): code %q, data present %v; want QUERY_TOO_COMPLEX and no data", costly.code(), costly.HasData)
	}
	if one := c.do("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", vars); one.code() == "QUERY_TOO_COMPLEX" {
		t.Errorf("one nodes(100 ids) was refused as too complex; want it within the limit")
	}
}

// fragmentDoubling returns a query whose fragments each spread the one
// below twice: levels of them select 2^levels copies of bottom.
func fragmentDoubling(levels int, bottom string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "query { viewer { ...F%d } }\n", levels)
	fmt.Fprintf(&b, "fragment F0 on User { %s }\n", bottom)
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "fragment F%d on User { ...F%d ...F%d }\n", i, i-1, i-1)
	}
	return b.String()
}

// Fragments that each spread the one below twice select 2^levels fields in a
// document of a few kilobytes. The estimator walked every spread again: 22
// levels took 0.7 s of CPU, 30 would take minutes, 60 forever, before any
// limit answered. Such an operation is refused at once, whoever sends it.
func TestFragmentDoublingIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig()) // MaxQueryComplexity 10,000
	c := s.client(t)
	began := time.Now()
	out := c.do(fragmentDoubling(60, "id name"), nil)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("60 levels of doubled fragments took %v to answer", took)
	}
	if out.code() != "QUERY_TOO_COMPLEX" || out.HasData {
		t.Errorf("60 levels of doubled fragments: code %q, data present %v; want QUERY_TOO_COMPLEX and no data", out.code(), out.HasData)
	}
	// A few levels, within the limit, still run.
	if small := c.do(fragmentDoubling(4, "id name"), nil); len(small.Errors) > 0 {
		t.Errorf("4 levels of doubled fragments (32 fields): %+v", small.Errors)
	}
}

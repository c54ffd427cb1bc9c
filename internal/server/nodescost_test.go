package server_test

import (
	"fmt"
	"strings"
	"testing"

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

package server_test

import (
	"testing"
)

// The session cookie authenticates only requests from the service's own
// pages and allowed origins: a cross-site request that carries no Origin
// (Sec-Fetch-Site tells) is refused, however the browser sent it.
func TestSessionCookieCountsOnlyFromOwnPages(t *testing.T) {
	t.Parallel()
	s := start(t, testConfig())
	me, _ := mustSignUp(t, s, "cookie@example.com")
	const rename = `mutation($n: String!) { updateProfile(input: {name: $n}) { user { name } } }`
	tests := []struct {
		name          string
		origin, fetch string
		wantOK        bool
	}{
		{"cross-site without Origin", "", "cross-site", false},
		{"same-site without Origin", "", "same-site", false},
		{"foreign Origin", "https://evil.example", "cross-site", false},
		{"same-origin without Origin", "", "same-origin", true},
		{"user's own navigation", "", "none", true},
		{"own page", testOrigin, "same-origin", true},
		{"allowed partner", "https://partner.example", "cross-site", true},
		{"program, no browser headers", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s.client(t)
			c.header.Set("Cookie", "fastimage_session="+me.token)
			if tc.origin != "" {
				c.header.Set("Origin", tc.origin)
			}
			if tc.fetch != "" {
				c.header.Set("Sec-Fetch-Site", tc.fetch)
			}
			name := "Name " + tc.name
			if !tc.wantOK {
				c.fails("UNAUTHENTICATED", rename, map[string]any{"n": name})
				var v struct{ Viewer struct{ Name string } }
				bearer := *me
				bearer.t = t
				bearer.must(`{ viewer { name } }`, nil, &v)
				if v.Viewer.Name == name {
					t.Fatalf("the refused mutation ran: name is %q", v.Viewer.Name)
				}
				return
			}
			var out struct {
				UpdateProfile struct{ User struct{ Name string } }
			}
			c.must(rename, map[string]any{"n": name}, &out)
			if out.UpdateProfile.User.Name != name {
				t.Errorf("name = %q, want %q", out.UpdateProfile.User.Name, name)
			}
		})
	}
}

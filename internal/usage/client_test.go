package usage_test

import (
	"strings"
	"testing"

	"github.com/fastimage/api/internal/usage"
)

func TestClientFamily(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ua, want string }{
		{"", ""},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome/Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge/Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari/macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome/iOS"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox/Linux"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet/Android"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome/ChromeOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0", "Opera/Windows"},
		{"curl/8.5.0", "curl/Other"},
		{"Go-http-client/1.1", "Other/Other"},
		{"ada@example.com wrote a prompt: a cat on the moon", "Other/Other"},
	} {
		if got := usage.ClientFamily(tc.ua); got != tc.want {
			t.Errorf("ClientFamily(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}

// knownFamilies is every answer ClientFamily may give.
var knownFamilies = func() map[string]bool {
	browsers := []string{"Edge", "Opera", "Samsung Internet", "Firefox", "Chrome", "Safari", "curl", "Other"}
	systems := []string{"Windows", "iOS", "Android", "ChromeOS", "macOS", "Linux", "Other"}
	out := map[string]bool{"": true}
	for _, b := range browsers {
		for _, s := range systems {
			out[b+"/"+s] = true
		}
	}
	return out
}()

// FuzzClientFamily checks that whatever a client sends as its User-Agent,
// what is stored is one of a fixed set of words: never the client's bytes.
func FuzzClientFamily(f *testing.F) {
	for _, seed := range []string{
		"", "Mozilla/5.0 (Windows NT 10.0) Chrome/1 Safari/1 Edg/1", "curl/8", "\x00\xff",
		strings.Repeat("Firefox/", 1000), "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) FxiOS/1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		if got := usage.ClientFamily(ua); !knownFamilies[got] {
			t.Fatalf("ClientFamily(%q) = %q, not one of the known families", ua, got)
		}
	})
}

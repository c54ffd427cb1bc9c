package usage

import "strings"

// maxClientBytes bounds Event.Client; ClientFamily's answers are far
// shorter.
const maxClientBytes = 64

// A family is recognised by the first marker found, in this order: many
// browsers name others for compatibility ("Chrome" says "Safari", "Edge"
// says "Chrome").
var (
	browsers = []struct{ marker, family string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"Opera", "Opera"},
		{"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chrome"},
		{"Safari/", "Safari"},
		{"curl/", "curl"},
	}
	systems = []struct{ marker, family string }{
		{"Windows", "Windows"},
		{"iPhone", "iOS"}, {"iPad", "iOS"}, {"iPod", "iOS"},
		{"Android", "Android"},
		{"CrOS", "ChromeOS"},
		{"Macintosh", "macOS"}, {"Mac OS X", "macOS"},
		{"Linux", "Linux"},
	}
)

// ClientFamily returns the browser and operating system families a
// User-Agent names, as "Browser/OS" such as "Chrome/Windows", or "Other"
// for either part it does not know; "" for an empty User-Agent. Versions,
// devices and everything else the string says are left out, and the answer
// is always one of a fixed set of words: nothing a client sends is stored
// as it sent it.
func ClientFamily(userAgent string) string {
	if userAgent == "" {
		return ""
	}
	return family(userAgent, browsers) + "/" + family(userAgent, systems)
}

func family(ua string, known []struct{ marker, family string }) string {
	for _, k := range known {
		if strings.Contains(ua, k.marker) {
			return k.family
		}
	}
	return "Other"
}

package webhook_test

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/webhook"
)

// FuzzCheckURL reads any string as a partner's webhook URL. Names are left
// out (they would be looked up in DNS; the dialer checks the address they
// resolve to at every connection), so every input the guard judges here
// has an IP address for a host. It never panics; it refuses with
// VALIDATION naming the field; and what it accepts is an https URL whose
// host, as the HTTP client will dial it, is an address the guard allows,
// in every spelling of it (IPv4-mapped, NAT64, 6to4).
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://93.184.215.14/hooks", "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/x",
		"https://127.0.0.1/", "https://[::ffff:127.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:a00:1::]/",
		"https://169.254.169.254/latest/meta-data", "http://93.184.215.14/", "https://u:p@93.184.215.14/",
		"https://93.184.215.14/#frag", "https://[fe80::1%25eth0]/", " https://93.184.215.14 ", "https:93.184.215.14",
	} {
		f.Add(s)
	}
	g := &webhook.Guard{}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err == nil {
			if _, perr := netip.ParseAddr(u.Hostname()); perr != nil && u.Hostname() != "" {
				return // a name: its addresses are the dialer's to check
			}
		}
		err = g.CheckURL(context.Background(), "url", raw)
		if err != nil {
			var ae *apperr.Error
			if !errors.As(err, &ae) || ae.Code != apperr.Validation || ae.Fields["field"] != "url" {
				t.Fatalf("CheckURL(%q): got %v, want VALIDATION naming url", raw, err)
			}
			return
		}
		if u.Scheme != "https" || u.User != nil {
			t.Fatalf("CheckURL accepted %q", raw)
		}
		ip, perr := netip.ParseAddr(u.Hostname())
		if perr != nil || !g.Allowed(ip) {
			t.Fatalf("CheckURL accepted %q, whose host %q the guard does not allow", raw, u.Hostname())
		}
	})
}

// FuzzGuardAllowed judges any 16 bytes as an IPv6 address and, when they
// map an IPv4 one, as that: an address and each form that reaches it must
// get the same answer, and nothing on the service's own network passes.
func FuzzGuardAllowed(f *testing.F) {
	for _, s := range []string{"::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::7f00:1", "2606:2800::1", "fd00:ec2::254", "::ffff:169.254.169.254"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	g := &webhook.Guard{}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 16 {
			return
		}
		ip := netip.AddrFrom16([16]byte(b))
		ok := g.Allowed(ip)
		if ok && (ip.Unmap().IsLoopback() || ip.Unmap().IsPrivate() || ip.Unmap().IsLinkLocalUnicast() || ip.Unmap().IsUnspecified() || ip.Unmap().IsMulticast()) {
			t.Fatalf("Allowed(%s)", ip)
		}
		if ip.Is4In6() {
			if v4 := ip.Unmap(); g.Allowed(v4) != ok {
				t.Fatalf("Allowed(%s) = %v but Allowed(%s) = %v", ip, ok, v4, !ok)
			}
			v4 := ip.Unmap().As4()
			nat64 := netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 10: 0, 11: 0, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
			if g.Allowed(nat64) != ok {
				t.Fatalf("Allowed(%s) = %v but Allowed(%s) = %v", ip, ok, nat64, !ok)
			}
		}
	})
}

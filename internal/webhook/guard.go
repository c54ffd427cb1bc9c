package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/fastimage/api/internal/apperr"
)

// Guard keeps webhook requests away from the service's own network: it
// refuses loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast,
// unspecified and cloud-metadata addresses. The check runs in the dialer,
// on the address actually connected to, so a name that resolves to a
// public address at registration and to a private one later (DNS
// rebinding) is refused too.
type Guard struct {
	// AllowPrivate (development) lets loopback and private addresses
	// through, and http URLs; metadata addresses stay refused.
	AllowPrivate bool
}

// errRefusedAddress is the dial error for an address the guard refuses.
var errRefusedAddress = errors.New("address not allowed for webhooks")

// metadata are the cloud providers' instance-metadata addresses: refused
// even in development, since they hand out credentials.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
}

var (
	cgnat = netip.MustParsePrefix("100.64.0.0/10")
	// Also refused: "this network", benchmarking, and the documentation
	// and reserved ranges, none of which a partner's receiver lives on.
	reserved = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("64:ff9b:1::/48"),
	}
	// IPv6 forms that carry an IPv4 address which a gateway or tunnel
	// turns back into IPv4: NAT64's well-known prefix (a cloud NAT gateway
	// translates it to private addresses too), 6to4, and the deprecated
	// IPv4-compatible addresses.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4compat  = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address of one of the
// forms above stands for.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip), v4compat.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Allowed reports whether a webhook may connect to ip.
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if v4, ok := embeddedIPv4(ip); ok {
		// Judged as the IPv4 address it reaches: a public one passes.
		ip = v4
	}
	for _, m := range metadata {
		if ip == m {
			return false
		}
	}
	if g.AllowPrivate {
		return ip.IsValid()
	}
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(),
		ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(), ip.IsMulticast(), cgnat.Contains(ip):
		return false
	}
	if ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// control is the dialer's check, run after DNS resolution and before
// each connection.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q", errRefusedAddress, host)
	}
	if !g.Allowed(ip) {
		return fmt.Errorf("%w: %s", errRefusedAddress, ip)
	}
	return nil
}

// Client returns an HTTP client whose connections pass the guard, that
// follows no redirects (a 3xx is the receiver's answer, not a new target),
// uses no proxy, and gives up after timeout.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: g.control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CheckURL validates a webhook URL at registration (or submission): an
// absolute https URL (http too in development), without credentials, whose
// host is not, and does not resolve to, an address the guard refuses. The
// dialer checks again at every connection.
// Returns VALIDATION naming field.
func (g *Guard) CheckURL(ctx context.Context, field, raw string) error {
	bad := func(format string, args ...any) error {
		return apperr.Errorf(apperr.Validation, format, args...).With("field", field)
	}
	if len(raw) > 2000 {
		return bad("Use a webhook URL of at most 2000 characters.")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return bad("Give the webhook URL as an absolute URL, like https://example.com/hooks/fastimage.")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && g.AllowPrivate:
	default:
		return bad("Webhook URLs must use https.")
	}
	if u.User != nil {
		return bad("Leave credentials out of the webhook URL; verify our signature instead.")
	}
	if u.Fragment != "" {
		return bad("Leave the #fragment out of the webhook URL.")
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !g.Allowed(ip) {
			return bad("Webhook URLs must point to a public address; %s is not one.", host)
		}
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return bad("The webhook URL's host %q could not be found; check the name.", host)
	}
	for _, ip := range addrs {
		if !g.Allowed(ip) {
			return bad("Webhook URLs must point to a public address; %q resolves to %s.", host, ip.Unmap())
		}
	}
	return nil
}

package main

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// notLoopbackHelp says what a refused target should have been.
const notLoopbackHelp = "the load tool only runs against this machine: use 127.0.0.1, [::1] or localhost"

// checkLoopback refuses a URL that is not http(s) on this machine. Only
// literal loopback addresses and localhost count: a name is never looked
// up, so no DNS answer can send the load elsewhere.
func checkLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: the scheme must be http or https", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: a URL with credentials is not accepted", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%q is not a loopback address: %s", raw, notLoopbackHelp)
	}
	return u, nil
}

// isLoopbackHost reports whether host is a loopback IP, localhost or a
// name under .localhost (which RFC 6761 reserves for this machine).
func isLoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// spreadsSources reports whether the virtual users can each connect from
// their own IPv4 loopback address to host: 127.0.0.0/8 is all loopback on
// Linux, but an IPv6 target has only ::1.
func spreadsSources(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() != nil && ip.IsLoopback()
}

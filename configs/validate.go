package configs

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Allowed values of the enumerated keys, in the order the docs list them.
var (
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"json", "console", "auto"}
	shutdownCloses = []string{"fin", "rst"}
)

// proxyName is what a proxy name may be: it appears in log fields, metric
// labels and admin API paths, so no spaces, slashes or quotes.
var proxyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the whole configuration and returns every problem found,
// joined; each is a *KeyError naming its key, e.g.
//
//	proxies[1].upstream: "db:abc" is not host:port: port "abc" is not a number from 1 to 65535
//
// Validate expects defaults applied ([Load] does so; so does
// [Config.ApplyDefaults]).
func (c *Config) Validate() error {
	var errs []error
	add := func(err *KeyError) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	add(oneOf("log.level", c.Log.Level, logLevels))
	add(oneOf("log.format", c.Log.Format, logFormats))

	if c.Admin.Listen != AdminDisabled {
		add(checkListen("admin.listen", c.Admin.Listen))
	}

	if c.Shutdown.DrainTimeout < 0 {
		add(keyErrorf("shutdown.drain_timeout", "%v is negative (0s closes connections at once)", c.Shutdown.DrainTimeout))
	}
	add(oneOf("shutdown.close", c.Shutdown.Close, shutdownCloses))
	if c.Diagnosis.SlowLogin < 0 {
		add(keyErrorf("diagnosis.slow_login", "%v is negative (0s turns the slow-login finding off)", c.Diagnosis.SlowLogin))
	}

	if len(c.Proxies) == 0 {
		add(keyErrorf("proxies", "no proxy configured: add one under proxies (see `tdsproxy config example`) or use `tdsproxy run --listen --upstream`"))
	}
	names := map[string]int{}
	var listens []listenAt
	if c.Admin.Listen != AdminDisabled {
		if l, ok := parseListen("admin.listen", c.Admin.Listen); ok {
			listens = append(listens, l)
		}
	}
	for i, p := range c.Proxies {
		for _, e := range validateProxy(i, p, names, &listens) {
			add(e)
		}
	}
	return errors.Join(errs...)
}

// validateProxy checks proxies[i]. names maps the names of the proxies
// before it to their index, listens holds the listeners so far (admin's
// and the proxies'); both grow with p's.
func validateProxy(i int, p ProxyConfig, names map[string]int, listens *[]listenAt) []*KeyError {
	var errs []*KeyError
	add := func(err *KeyError) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	key := func(k string) string { return fmt.Sprintf("proxies[%d].%s", i, k) }
	switch {
	case p.Name == "":
		add(keyErrorf(key("name"), "must not be empty"))
	case !proxyName.MatchString(p.Name):
		add(keyErrorf(key("name"), "%q may hold only letters, digits, '.', '_' and '-' (at most 64, not starting with a symbol)", p.Name))
	default:
		if j, dup := names[p.Name]; dup {
			add(keyErrorf(key("name"), "%q is already the name of proxies[%d]", p.Name, j))
		} else {
			names[p.Name] = i
		}
	}
	if err := checkListen(key("listen"), p.Listen); err != nil {
		add(err)
	} else if l, ok := parseListen(key("listen"), p.Listen); ok {
		for _, other := range *listens {
			if l.conflicts(other) {
				hint := ""
				if other.key == "admin.listen" {
					hint = ` (move admin.listen, or set it to "off")`
				}
				add(keyErrorf(l.key, "%q overlaps %s %q: two listeners cannot share a port%s", p.Listen, other.key, other.addr, hint))
				break
			}
		}
		*listens = append(*listens, l)
	}
	if err := checkUpstream(key("upstream"), p.Upstream); err != nil {
		add(err)
	} else if selfLoop(p.Listen, p.Upstream) {
		add(keyErrorf(key("upstream"), "%q is this proxy's own listen address (%s): every connection would come back to the proxy", p.Upstream, p.Listen))
	}
	if p.DialTimeout <= 0 {
		add(keyErrorf(key("dial_timeout"), "%v must be more than 0 (leave it out for the default, %v)", p.DialTimeout, DefaultDialTimeout))
	}
	if p.MaxConnections < -1 {
		add(keyErrorf(key("max_connections"), "%d must be at least 1, or -1 for no cap", p.MaxConnections))
	}
	if p.NegotiationTimeout < 0 {
		add(keyErrorf(key("negotiation_timeout"), "%v is negative (0s disables it)", p.NegotiationTimeout))
	}
	if p.MaxNegotiationBuffer != 0 && p.MaxNegotiationBuffer < 4096 {
		add(keyErrorf(key("max_negotiation_buffer"), "%d is below 4096 bytes: a ClientHello would not fit", p.MaxNegotiationBuffer))
	}
	if p.LimitClose != "" {
		add(oneOf(key("limit_close"), p.LimitClose, []string{"rst", "fin"}))
	}
	for _, e := range validateBridge(key("bridge"), p.Bridge) {
		add(e)
	}
	return errs
}

func oneOf(key, val string, allowed []string) *KeyError {
	if slices.Contains(allowed, val) {
		return nil
	}
	return keyErrorf(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

// splitHostPort splits s and checks that the port is a number in
// [minPort, 65535]; service names ("ms-sql-s") are refused so that a typo
// cannot become a lookup.
func splitHostPort(key, s string, minPort int) (host string, port int, kerr *KeyError) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return "", 0, keyErrorf(key, "%q is not host:port: %v", s, err)
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < minPort || port > 65535 {
		return "", 0, keyErrorf(key, "%q is not host:port: port %q is not a number from %d to 65535", s, ps, minPort)
	}
	return host, port, nil
}

// checkListen accepts "host:port", ":port" (every interface) and port 0 (a
// free port, handy in tests).
func checkListen(key, s string) *KeyError {
	_, _, err := splitHostPort(key, s, 0)
	return err
}

// checkUpstream requires a host and a port from 1 to 65535.
func checkUpstream(key, s string) *KeyError {
	host, _, err := splitHostPort(key, s, 1)
	if err != nil {
		return err
	}
	if host == "" {
		return keyErrorf(key, "%q has no host: write host:port, e.g. sql01.example.com:1433", s)
	}
	return nil
}

// listenAt is a parsed listen address, to find two listeners on one port.
type listenAt struct {
	key, addr, host string
	port            int
}

func parseListen(key, s string) (listenAt, bool) {
	host, port, err := splitHostPort(key, s, 0)
	if err != nil {
		return listenAt{}, false
	}
	return listenAt{key: key, addr: s, host: host, port: port}, true
}

// conflicts reports whether both cannot listen at once: same port and the
// same host, or either on every interface. Port 0 never conflicts: each
// listener gets its own free port.
func (l listenAt) conflicts(o listenAt) bool {
	if l.port == 0 || l.port != o.port {
		return false
	}
	return l.host == o.host || isWildcard(l.host) || isWildcard(o.host)
}

// selfLoop reports whether upstream is, on its face, the proxy's own
// listener: the same port, and the same host or a loopback host on a
// listener bound to every interface. Names other than localhost are not
// resolved here; the proxy checks again on the address it binds.
func selfLoop(listen, upstream string) bool {
	lh, lp, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	uh, up, err := net.SplitHostPort(upstream)
	if err != nil || lp != up || lp == "0" {
		return false
	}
	if strings.EqualFold(lh, uh) {
		return true
	}
	if !isWildcard(lh) && !isLoopback(lh) {
		return false
	}
	return isLoopback(uh) && (isWildcard(lh) || isLoopback(lh) && sameLoopback(lh, uh))
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameLoopback: localhost stands for 127.0.0.1 and ::1.
func sameLoopback(a, b string) bool {
	norm := func(h string) string {
		if strings.EqualFold(h, "localhost") {
			return "localhost"
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback) {
				return "localhost"
			}
			return ip.String()
		}
		return h
	}
	return norm(a) == norm(b)
}

func isWildcard(host string) bool {
	switch host {
	case "", "0.0.0.0", "::":
		return true
	}
	return false
}

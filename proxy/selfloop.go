package proxy

import (
	"fmt"
	"net"
	"strconv"
)

// CheckSelfLoop returns an error wrapping ErrSelfLoop when upstream is the
// listener at listen itself (the address actually bound, so port 0 is
// resolved): every connection would dial the proxy again, without end.
// A listener on every interface loops to any local address on its port.
// An upstream that does not resolve now is not a loop (the dialer reports
// it per connection). Callers that bind the listener themselves (package
// control) check before serving, so the mistake is refused when it is set.
func CheckSelfLoop(upstream string, listen net.Addr) error {
	la, ok := listen.(*net.TCPAddr)
	if !ok {
		return nil
	}
	host, port, err := net.SplitHostPort(upstream)
	if err != nil || port != strconv.Itoa(la.Port) {
		return nil
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.LookupIP(host)
		if err != nil {
			return nil
		}
		ips = addrs
	}
	for _, ip := range ips {
		if la.IP.Equal(ip) || la.IP.IsUnspecified() && (ip.IsLoopback() || ip.IsUnspecified() || isOwnIP(ip)) {
			return &selfLoopError{upstream: upstream, listen: la.String()}
		}
	}
	return nil
}

// selfLoopError says which upstream loops to which listener; it is
// ErrSelfLoop for errors.Is.
type selfLoopError struct{ upstream, listen string }

func (e *selfLoopError) Error() string {
	return fmt.Sprintf("%q is this proxy's own listen address (bound at %s): every connection would come back to the proxy", e.upstream, e.listen)
}

func (e *selfLoopError) Is(target error) bool { return target == ErrSelfLoop }

// isOwnIP reports whether ip is one of this host's interface addresses.
func isOwnIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

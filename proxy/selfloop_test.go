package proxy

import (
	"errors"
	"net"
	"testing"
)

// An upstream naming the proxy's own bound address is a loop; another
// port, or another host, is not (issue 18 item 8).
func TestCheckSelfLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	wild := &net.TCPAddr{IP: net.IPv4zero, Port: ln.Addr().(*net.TCPAddr).Port}
	for _, tc := range []struct {
		upstream string
		at       net.Addr
		loop     bool
	}{
		{ln.Addr().String(), ln.Addr(), true},
		{"localhost:" + port, ln.Addr(), true},
		{"127.0.0.1:" + port, wild, true},
		{"127.0.0.1:1", ln.Addr(), false},
		{"192.0.2.1:" + port, ln.Addr(), false},
	} {
		err := CheckSelfLoop(tc.upstream, tc.at)
		if got := errors.Is(err, ErrSelfLoop); got != tc.loop {
			t.Errorf("CheckSelfLoop(%s, %v) = %v, want loop %v", tc.upstream, tc.at, err, tc.loop)
		}
	}
}

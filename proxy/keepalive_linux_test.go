package proxy

import (
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
)

// soKeepAlive reads SO_KEEPALIVE of a proxy socket.
func soKeepAlive(t *testing.T, c net.Conn) bool {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v != 0
}

// startKeepAliveProxy is startProxy with the keep-alive delay set to d.
func startKeepAliveProxy(t *testing.T, upstream string, d time.Duration) (*Proxy, *recordSink) {
	t.Helper()
	rs := newRecordSink()
	p, err := New(Config{Name: "test", Listen: "127.0.0.1:0", Upstream: upstream}, Options{Sink: rs.sink, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.keepAliveDelay = d
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, rs
}

// liveSession waits for the proxy's only session to have dialled, and
// returns it.
func liveSession(t *testing.T, p *Proxy) *session {
	t.Helper()
	var s *session
	testkit.WaitFor(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, x := range p.sessions {
			x.mu.Lock()
			dialled := x.server != nil
			x.mu.Unlock()
			if dialled {
				s = x
				return true
			}
		}
		return false
	}, 5*time.Second, "a session with its upstream dialled")
	return s
}

// A connection that lives past the delay gets TCP keep-alive on both of
// the proxy's sockets; one that ends sooner never has it, and leaves no
// timer behind (issue 17: the eight setsockopt calls a short login paid).
func TestKeepAliveLazy(t *testing.T) {
	up := startTapServer(t, echo)
	t.Run("lives", func(t *testing.T) {
		p, rs := startKeepAliveProxy(t, up.addr(), 20*time.Millisecond)
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s := liveSession(t, p)
		testkit.WaitFor(t, func() bool { return soKeepAlive(t, s.client) && soKeepAlive(t, s.server) },
			5*time.Second, "SO_KEEPALIVE on both proxy sockets")
		if !soKeepAlive(t, s.client) || !soKeepAlive(t, s.server) {
			t.Fatal("keep-alive went off again")
		}
		c.Close()
		rs.next(t)
	})
	t.Run("short", func(t *testing.T) {
		p, rs := startKeepAliveProxy(t, up.addr(), time.Hour)
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s := liveSession(t, p)
		if soKeepAlive(t, s.client) || soKeepAlive(t, s.server) {
			t.Fatal("keep-alive set at accept or dial")
		}
		c.Close()
		rs.next(t)
		s.mu.Lock()
		on := s.keepAlive.on
		s.mu.Unlock()
		if on {
			t.Fatal("keep-alive timer fired")
		}
		// Stop reports false for a timer already stopped: finish stopped it.
		if s.keepAlive.t.Stop() {
			t.Fatal("keep-alive timer still pending after the session finished")
		}
	})
}

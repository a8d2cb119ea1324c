package proxy

import (
	"context"
	"net"
	"time"
)

// TCP keep-alive, set late. Go's net package enables keep-alive on every
// accepted and dialled TCP socket: four setsockopt calls each, eight per
// proxied connection, which a login that lasts a few milliseconds pays for
// nothing (BENCHMARKS.md, issue 17: system calls HAProxy does not make). The
// proxy's listener and dialer leave keep-alive off, and a session that is
// still open after keepAliveDelay turns it on for both of its sockets, with
// Go's own settings: a peer that vanishes from a connection that lives is
// still noticed, as before.

// keepAliveDelay is how long a session lives before its sockets get
// keep-alive; Proxy.keepAliveAfter overrides it (tests).
const keepAliveDelay = time.Second

// keepAliveConfig is what Go's net package sets on a socket it accepts or
// dials (net.ListenConfig.KeepAlive and net.Dialer.KeepAlive zero: 15 s
// idle, 15 s between probes, 9 probes).
var keepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// Listen is net.Listen for a proxy's listener: keep-alive is not set at
// accept, as the session sets it once a connection has lived
// keepAliveDelay. A listener from elsewhere (net.Listen) works as well,
// its sockets having keep-alive from the start.
func Listen(network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), network, addr)
}

// lazyKeepAlive is a session's pending keep-alive: the timer that sets it,
// and whether it has fired (guarded by session.mu), for a dial that ends
// later.
type lazyKeepAlive struct {
	t  *time.Timer
	on bool
}

func (p *Proxy) keepAliveAfter() time.Duration {
	if p.keepAliveDelay > 0 {
		return p.keepAliveDelay
	}
	return keepAliveDelay
}

// startKeepAlive arms the session's keep-alive timer; the caller has not
// yet started a direction (finish stops the timer, stopKeepAlive).
func (s *session) startKeepAlive() {
	s.keepAlive.t = time.AfterFunc(s.p.keepAliveAfter(), s.enableKeepAlive)
}

// stopKeepAlive is called when the session has finished.
func (s *session) stopKeepAlive() {
	if s.keepAlive.t != nil {
		s.keepAlive.t.Stop()
	}
}

// enableKeepAlive turns keep-alive on for the session's sockets (the
// upstream's too if dialled; connect sets it on one dialled later).
func (s *session) enableKeepAlive() {
	s.mu.Lock()
	s.keepAlive.on = true
	srv, closed := s.server, s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	setKeepAlive(s.client)
	if srv != nil {
		setKeepAlive(srv)
	}
}

// setKeepAlive enables keep-alive on c if it is a TCP socket. An error
// (the socket closed meanwhile) changes nothing for the connection.
func setKeepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(keepAliveConfig)
	}
}

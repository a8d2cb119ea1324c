//go:build linux

package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
)

// openFDs counts this process's descriptors by kind ("socket", "pipe"...).
func openFDs(t *testing.T) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	kinds := map[string]int{}
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if i := strings.IndexByte(l, ':'); i > 0 {
			l = l[:i]
		}
		kinds[l]++
	}
	return kinds
}

// After negotiation an idle relayed connection holds its two sockets and
// nothing else: no splice pipe pair per direction (Go's io.Copy between
// TCP conns keeps one for the connection's life, 6 descriptors per
// connection in all; BENCHMARKS.md). Counted in this process, a connection
// is 4 descriptors: the test's client, the proxy's two, the echo server's.
func TestRelayIdleHoldsNoPipes(t *testing.T) {
	const n = 64
	// The echo copies through a buffer: io.Copy(c, c) would splice and
	// hold a pipe pair per connection itself.
	up := startTapServer(t, func(c *net.TCPConn) {
		buf := make([]byte, 16<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	p, _ := startProxy(t, up.addr(), Options{})
	before := openFDs(t)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	msg := make([]byte, 64<<10) // several bursts, each spliced
	_, _ = rand.Read(msg)
	msg[0] = 'x' // not TDS: the proxy stops parsing and relays at once
	got := make([]byte, len(msg))
	for i := range n {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { _, _ = c.Write(msg) }()
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("connection %d: echo differs", i)
		}
	}
	// Sockets: exactly the connections' own. Pipes: Go's splice pool may
	// keep a few, and under -race sync.Pool drops some Puts, leaving pipes
	// for the GC's finalizers to close; collect before counting (bounded).
	var after map[string]int
	testkit.Poll(func() bool {
		if after = openFDs(t); after["pipe"]-before["pipe"] <= n/4 {
			return true
		}
		runtime.GC()
		return false
	}, 2*time.Second)
	// Earlier tests' sockets may still be closing: "before" can count a
	// few that are gone now, so only the upper bound is exact.
	if got := after["socket"] - before["socket"]; got > 4*n {
		t.Errorf("%d sockets for %d idle relayed connections, want at most %d (client, proxy×2, server)", got, n, 4*n)
	}
	if got := after["pipe"] - before["pipe"]; got > n/4 {
		t.Errorf("%d pipe descriptors held with %d idle relayed connections, want at most %d (a pair per direction per connection would be %d)",
			got, n, n/4, 4*n)
	}
	if got := p.ActiveCount(); got != n {
		t.Errorf("ActiveCount = %d, want %d", got, n)
	}
}

// An RST from the server after negotiation still reaches the client as an
// RST (the relay reads inside the netpoller callback and must turn the
// socket error into the same error a Read would give).
func TestRelayResetAfterNegotiation(t *testing.T) {
	up := startTapServer(t, func(c *net.TCPConn) {
		buf := make([]byte, 4)
		_, _ = io.ReadFull(c, buf)
		_, _ = c.Write(buf) // proves the relay is up
		_, _ = io.ReadFull(c, buf[:1])
		_ = c.SetLinger(0)
	})
	p, rs := startProxy(t, up.addr(), Options{})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("xyzw")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	// Wait until the proxy has left the watching loop for the relay.
	testkit.WaitFor(t, p.allRelaying, 5*time.Second, "the proxy to leave the watching loop for the relay")
	_, _ = c.Write([]byte{1})
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read error = %v, want connection reset", err)
	}
	rec := rs.next(t)
	if rec.Close == nil || rec.Close.By != SideServer || rec.Close.Kind != CloseRST {
		t.Fatalf("close = %+v, want server rst", rec.Close)
	}
}

// allRelaying reports whether no live session is still watching.
func (p *Proxy) allRelaying() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sessions {
		if s.watching.Load() {
			return false
		}
	}
	return true
}

//go:build linux

package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
)

// parkedDirections counts the relay directions of p's sessions that hold
// no goroutine (park_linux.go).
func parkedDirections(p *Proxy) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sessions {
		for i := range s.readers {
			if r := s.readers[i].Load(); r != nil && r.parked.Load() {
				n++
			}
		}
	}
	return n
}

// parkServer is an upstream that echoes what it reads, and resets the
// connection when it reads "RST!".
func parkServer(t *testing.T) *tapServer {
	return startTapServer(t, func(c *net.TCPConn) {
		buf := make([]byte, 16<<10)
		for {
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			n, err := c.Read(buf)
			if n > 0 {
				if bytes.Contains(buf[:n], []byte("RST!")) {
					_ = c.SetLinger(0)
					return
				}
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = c.CloseWrite()
				return
			}
		}
	})
}

// dialParked opens n relayed connections (a non-TDS first byte: the proxy
// relays at once), checks each echoes, and waits until every direction of
// every connection has parked.
func dialParked(t *testing.T, p *Proxy, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		echoOnce(t, c, []byte("xhello"))
	}
	if !testkit.Poll(func() bool { return parkedDirections(p) == 2*n }, 5*time.Second) {
		t.Fatalf("%d of %d directions parked after 5s", parkedDirections(p), 2*n)
	}
	return conns
}

func echoOnce(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo of %q: %v", msg, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

// An idle relayed connection holds no goroutine; it relays as before when
// bytes come, parks again when they stop, and ends as it would unparked:
// a client's FIN, an upstream's RST, the admin API (RST and FIN), shutdown.
func TestIdleRelayParks(t *testing.T) {
	t.Run("relays after parking, both ways, many times", func(t *testing.T) {
		up := parkServer(t)
		p, rs := startProxy(t, up.addr(), Options{})
		base := runtime.NumGoroutine()
		const n = 40
		conns := dialParked(t, p, n)
		// Two directions a connection, none with a goroutine: the count
		// stays near what it was before the connections (the test's own
		// upstream holds one goroutine per connection).
		if g := runtime.NumGoroutine(); g > base+n+10 {
			t.Errorf("%d goroutines with %d parked connections, %d before: the relay still holds goroutines", g, n, base)
		}
		for round := range 3 {
			for i, c := range conns {
				echoOnce(t, c, bytes.Repeat([]byte{byte('a' + round), byte(i)}, 40000)) // bursts above the read buffer: spliced
			}
			if !testkit.Poll(func() bool { return parkedDirections(p) == 2*n }, 5*time.Second) {
				t.Fatalf("round %d: %d of %d directions parked again", round, parkedDirections(p), 2*n)
			}
		}
		for _, c := range conns {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		for _, c := range conns {
			if _, err := io.ReadAll(c); err != nil {
				t.Errorf("after the client's FIN: %v, want the upstream's FIN", err)
			}
		}
		for range n {
			rec := rs.next(t)
			if rec.Close == nil || rec.Close.By != SideClient || rec.Close.Kind != CloseFIN {
				t.Errorf("record close = %+v, want by client, fin", rec.Close)
			}
			if want := int64(len("xhello") + 3*80000); rec.BytesClientToServer != want || rec.BytesServerToClient != want {
				t.Errorf("record bytes = %d/%d, want %d each way", rec.BytesClientToServer, rec.BytesServerToClient, want)
			}
		}
	})

	t.Run("upstream reset while the client direction is parked", func(t *testing.T) {
		up := parkServer(t)
		p, rs := startProxy(t, up.addr(), Options{})
		c := dialParked(t, p, 1)[0]
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("RST!")); err != nil {
			t.Fatal(err)
		}
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client read %v, want the upstream's reset passed on", err)
		}
		rec := rs.next(t)
		if rec.Close == nil || rec.Close.By != SideServer || rec.Close.Kind != CloseRST {
			t.Errorf("record close = %+v, want by server, rst", rec.Close)
		}
	})

	for _, style := range []CloseStyle{StyleRST, StyleFIN} {
		t.Run("admin close "+string(style)+" while parked", func(t *testing.T) {
			up := parkServer(t)
			p, rs := startProxy(t, up.addr(), Options{})
			c := dialParked(t, p, 1)[0]
			id := p.Connections()[0].ID
			start := time.Now()
			if !p.CloseConnection(id, style, "closed by test") {
				t.Fatal("CloseConnection found no connection")
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c)
			switch style {
			case StyleRST:
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("client read %v, want a reset", err)
				}
			default:
				if err != nil {
					t.Errorf("client read %v, want the proxy's FIN", err)
				}
				c.Close() // answer the FIN: the drain ends at once
			}
			rec := rs.next(t)
			if rec.Close == nil || rec.Close.By != SideProxy {
				t.Errorf("record close = %+v, want by proxy", rec.Close)
			}
			if d := time.Since(start); d > finLinger+time.Second {
				t.Errorf("record %v after the close", d)
			}
		})
	}

	t.Run("shutdown with parked connections", func(t *testing.T) {
		up := parkServer(t)
		p, rs := startProxy(t, up.addr(), Options{})
		const n = 8
		dialParked(t, p, n)
		// The drain wait runs out at once; then every connection is reset.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done := make(chan struct{})
		go func() { _ = p.Shutdown(ctx, true); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown still waiting 5s after closing parked connections")
		}
		for range n {
			if rec := rs.next(t); rec.Close == nil || rec.Close.By != SideProxy {
				t.Errorf("record close = %+v, want by proxy", rec.Close)
			}
		}
	})
}

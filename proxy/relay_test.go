package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A non-TDS protocol is relayed byte for byte, and the record says so.
func TestRelayNonTDSByteExact(t *testing.T) {
	up := startTapServer(t, echo)
	p, rs := startProxy(t, up.addr(), Options{})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := append([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), make([]byte, 200_000)...)
	_, _ = rand.Read(msg[40:])
	go func() {
		_, _ = c.Write(msg)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through proxy differs: got %d bytes, sent %d", len(got), len(msg))
	}
	rec := rs.next(t)
	if rec.Protocol != "not-tds" {
		t.Errorf("protocol = %q, want not-tds", rec.Protocol)
	}
	if len(rec.ParseIssues) == 0 {
		t.Errorf("no parse issue recorded for HTTP bytes")
	}
	if rec.BytesClientToServer != int64(len(msg)) || rec.BytesServerToClient != int64(len(msg)) {
		t.Errorf("bytes = %d/%d, want %d both ways", rec.BytesClientToServer, rec.BytesServerToClient, len(msg))
	}
	if rec.Close == nil || rec.Close.By != SideClient || rec.Close.Kind != CloseFIN {
		t.Errorf("close = %+v, want client fin", rec.Close)
	}
}

// An upstream that cannot be reached closes the client with an RST and the
// record says why.
func TestDialFailure(t *testing.T) {
	// Port 1 on loopback: nothing listens there (binding it needs root and
	// tcpmux is long dead), so the dial is refused. A port freed by closing a
	// listener could be handed to the proxy itself.
	p, rs := startProxy(t, "127.0.0.1:1", Options{})
	dialReset(t, p.Addr().String())
	rec := rs.next(t)
	if rec.Close == nil || rec.Close.By != SideProxy || rec.Close.Kind != CloseDialFailed {
		t.Fatalf("close = %+v, want proxy dial-failed", rec.Close)
	}
}

// A server RST reaches the client as an RST, not a FIN: that is the 10054.
func TestServerResetPropagates(t *testing.T) {
	up := startTapServer(t, func(c *net.TCPConn) {
		buf := make([]byte, 8)
		_, _ = io.ReadFull(c, buf)
		_ = c.SetLinger(0)
	})
	p, rs := startProxy(t, up.addr(), Options{})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// A PRELOGIN header with a short body: the server resets after 8 bytes.
	_, _ = c.Write([]byte{0x12, 0x01, 0x00, 0x0A, 0, 0, 1, 0, 0xFF, 0})
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read error = %v, want connection reset", err)
	}
	rec := rs.next(t)
	if rec.Close == nil || rec.Close.By != SideServer || rec.Close.Kind != CloseRST {
		t.Fatalf("close = %+v, want server rst", rec.Close)
	}
	if rec.Close.Phase != PhasePreloginRequest {
		t.Errorf("close phase = %s, want %s", rec.Close.Phase, PhasePreloginRequest)
	}
}

// A proxy whose upstream is its own listener would dial itself forever; it
// refuses to start.
func TestSelfLoopRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Name: "loop", Listen: ln.Addr().String(), Upstream: ln.Addr().String()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Serve(ln); !errors.Is(err, ErrSelfLoop) {
		t.Fatalf("Serve = %v, want ErrSelfLoop", err)
	}
	// A wildcard listener loops to any local address on its port.
	ln2, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln2.Addr().(*net.TCPAddr).Port
	p2, err := New(Config{Name: "loop2", Listen: ln2.Addr().String(), Upstream: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Serve(ln2); !errors.Is(err, ErrSelfLoop) {
		t.Fatalf("Serve on 0.0.0.0 = %v, want ErrSelfLoop", err)
	}
}

// dialReset dials addr expecting the proxy to reset the connection at once.
// The RST can beat the dialler's own check of the connect, so a reset
// reported by Dial counts too.
func dialReset(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v", err)
		}
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read error = %v, want connection reset", err)
	}
}

package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p, rs := startProxy(t, dead, Options{})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read error = %v, want connection reset", err)
	}
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

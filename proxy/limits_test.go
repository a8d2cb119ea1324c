package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// One connection over max_connections is accepted and reset at once, and
// recorded; the ones within the limit are untouched.
func TestMaxConnections(t *testing.T) {
	up := startTapServer(t, echo)
	rs := newRecordSink()
	p, err := New(Config{Name: "lim", Listen: "127.0.0.1:0", Upstream: up.addr(), MaxConnections: 2}, Options{Sink: rs.sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var open []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A round trip makes sure the proxy has registered the session.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	dialReset(t, p.Addr().String())
	rec := rs.next(t)
	if rec.Close == nil || rec.Close.By != SideProxy || rec.Close.Kind != CloseLimit {
		t.Errorf("close = %+v, want proxy limit", rec.Close)
	}
	if p.Rejected() != 1 {
		t.Errorf("Rejected = %d", p.Rejected())
	}
	// The first two still work.
	for _, c := range open {
		if _, err := c.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Errorf("connection within the limit broke: %v", err)
		}
	}
}

// A client that dribbles a PRELOGIN one byte at a time is closed at the
// negotiation deadline; another connection negotiating meanwhile is fine.
func TestNegotiationTimeoutSlowloris(t *testing.T) {
	up := startTapServer(t, func(c *net.TCPConn) { _, _ = io.Copy(io.Discard, c) })
	rs := newRecordSink()
	p, err := New(Config{Name: "slow", Listen: "127.0.0.1:0", Upstream: up.addr(), NegotiationTimeout: 400 * time.Millisecond}, Options{Sink: rs.sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := []byte{0x12, 0x01, 0x00, 0x40, 0, 0, 1, 0}
	var werr error
	for i := 0; i < 40 && werr == nil; i++ { // bounded: at most 40 × 50ms
		_, werr = c.Write(hdr[i%len(hdr) : i%len(hdr)+1])
		time.Sleep(50 * time.Millisecond)
	}
	rec := rs.next(t)
	if rec.Close == nil || rec.Close.By != SideProxy || rec.Close.Kind != CloseTimeout {
		t.Fatalf("close = %+v, want proxy timeout", rec.Close)
	}
	if werr == nil {
		t.Error("the slow client was never cut off")
	}
}

// A negotiation message larger than max_negotiation_buffer stops the
// watcher; the bytes still flow unchanged.
func TestMaxNegotiationBuffer(t *testing.T) {
	up := startTapServer(t, echo)
	rs := newRecordSink()
	p, err := New(Config{Name: "buf", Listen: "127.0.0.1:0", Upstream: up.addr(), MaxNegotiationBuffer: 1024}, Options{Sink: rs.sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// A PRELOGIN message of four 1000-byte packets, EOM on the last.
	var msg []byte
	for i := range 4 {
		st := byte(0)
		if i == 3 {
			st = 1
		}
		msg = append(msg, 0x12, st, 0x03, 0xF0, 0, 0, byte(i), 0)
		msg = append(msg, bytes.Repeat([]byte{byte('a' + i)}, 1000)...)
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = c.Write(msg); _ = c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d bytes, err %v; want the %d bytes sent", len(got), err, len(msg))
	}
	rec := rs.next(t)
	if len(rec.ParseIssues) == 0 || !bytes.Contains([]byte(rec.ParseIssues[0].Error), []byte("max_negotiation_buffer")) {
		t.Errorf("parse issues = %+v", rec.ParseIssues)
	}
}

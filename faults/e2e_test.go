package faults_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// startProxy runs a proxy to upstream with the rules armed; its records
// arrive on the channel.
func startProxy(t *testing.T, upstream string, rules ...faults.RuleSpec) (*proxy.Proxy, <-chan *proxy.Record) {
	t.Helper()
	e := faults.NewEngine(nil)
	if err := e.SetRules("p", rules); err != nil {
		t.Fatal(err)
	}
	sink, recs := proxykit.Records(64)
	p := proxykit.Start(t, proxy.Config{Name: "p", Upstream: upstream}, proxy.Options{Decider: e.Decider("p"), Sink: sink})
	return p, recs
}

// Generic faults end to end through a real proxy and sockets: the bytes
// arrive intact but late (latency), cut at the limit (limit_data), or the
// connection is reset after N bytes (reset).
func TestGenericFaultsEndToEnd(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	roundTrip := func(t *testing.T, addr string) ([]byte, time.Duration, error) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		go func() { _, _ = c.Write(msg); _ = c.(*net.TCPConn).CloseWrite() }()
		got, err := io.ReadAll(c)
		return got, time.Since(start), err
	}
	t.Run("latency", func(t *testing.T) {
		p, recs := startProxy(t, testkit.StartEcho(t), faults.RuleSpec{Name: "lag", Action: "latency", Direction: "downstream", Options: map[string]string{"delay": "300ms"}})
		got, took, err := roundTrip(t, p.Addr().String())
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo through latency: %d bytes, %v", len(got), err)
		}
		if took < 300*time.Millisecond {
			t.Errorf("round trip took %v, want at least the 300ms of latency", took)
		}
		rec := proxykit.Next(t, recs, 15*time.Second)
		if len(rec.Faults) == 0 || rec.Faults[0].Rule != "lag" || rec.Faults[0].Action != "latency" {
			t.Errorf("faults %+v", rec.Faults)
		}
	})
	t.Run("limit_data", func(t *testing.T) {
		p, recs := startProxy(t, testkit.StartEcho(t), faults.RuleSpec{Name: "cap", Action: "limit_data", Direction: "downstream", Options: map[string]string{"bytes": "1000"}})
		got, _, _ := roundTrip(t, p.Addr().String())
		if len(got) != 1000 || !bytes.Equal(got, msg[:1000]) {
			t.Fatalf("got %d bytes, want exactly the first 1000", len(got))
		}
		// The client half-closes after sending, so its FIN is the first
		// close; the cut is in the faults.
		rec := proxykit.Next(t, recs, 15*time.Second)
		if len(rec.Faults) == 0 || rec.Faults[0].Rule != "cap" {
			t.Errorf("faults %+v, want rule cap", rec.Faults)
		}
	})
	t.Run("reset after bytes", func(t *testing.T) {
		p, _ := startProxy(t, testkit.StartEcho(t), faults.RuleSpec{Name: "rst", Action: "reset", Direction: "downstream", Options: map[string]string{"bytes": "5000"}})
		got, _, err := roundTrip(t, p.Addr().String())
		// The RST must reach the client as a reset (10054 on Windows,
		// ECONNRESET here), not as any error or a clean end.
		if len(got) > 5000 || !errors.Is(err, errConnReset) {
			t.Fatalf("got %d bytes, err %v; want at most 5000 then a reset", len(got), err)
		}
	})
}

var errConnReset = syscall.ECONNRESET

// The full-backlog form of delayed-accept: with accepts paused and a listen
// queue of 1, further SYNs go unanswered and connects time out.
func TestBacklogFormTimesOutConnects(t *testing.T) {
	p, _ := startProxy(t, testkit.StartEcho(t), faults.RuleSpec{Name: "full", Scenario: "delayed-accept",
		Options: map[string]string{"accept_delay": "3s", "backlog": "1"}})
	addr := p.Addr().String()
	// The first accept happens before the gate is asked again; give the loop
	// a moment to reach its pause with the small backlog in place.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	timeouts := 0
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 400*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				timeouts++
				continue
			}
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	if timeouts == 0 {
		t.Errorf("all 8 connects completed; want some to time out against a full backlog")
	}
	t.Logf("%d of 8 connects timed out, %d completed", timeouts, len(conns))
}

package proxykit

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// A proxy started by Start relays to its upstream and its record reaches
// the Records sink.
func TestStartRelaysAndRecords(t *testing.T) {
	sink, recs := Records(4)
	p := Start(t, proxy.Config{Upstream: testkit.StartEcho(t)}, proxy.Options{Sink: sink})
	if Port(p) <= 0 {
		t.Fatalf("port %d", Port(p))
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("not tds")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 7)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "not tds" {
		t.Fatalf("relayed %q, %v", b, err)
	}
	c.Close()
	if r := Next(t, recs, 10*time.Second); r.Proxy != "p" {
		t.Errorf("record proxy = %q, want p", r.Proxy)
	}
}

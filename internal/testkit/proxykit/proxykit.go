// Package proxykit starts a proxy in process for tests, beside testkit
// (which cannot import proxy: proxy's own tests use testkit).
package proxykit

import (
	"net"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// Start runs a proxy with cfg and opts until the test ends. An empty
// cfg.Listen is a free loopback port, an empty cfg.Name is "p".
func Start(t testing.TB, cfg proxy.Config, opts proxy.Options) *proxy.Proxy {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Name == "" {
		cfg.Name = "p"
	}
	p, err := proxy.New(cfg, opts)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("proxy Start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Port is the proxy's listening port.
func Port(p *proxy.Proxy) int { return p.Addr().(*net.TCPAddr).Port }

// Records is a proxy.Options.Sink that keeps up to n finished records on
// a channel; past that it drops them rather than block a session (a test
// that reads none loses the surplus).
func Records(n int) (func(*proxy.Record), <-chan *proxy.Record) {
	ch := make(chan *proxy.Record, n)
	return func(r *proxy.Record) {
		select {
		case ch <- r:
		default:
		}
	}, ch
}

// Next is the next record from recs, failing the test after timeout.
func Next(t testing.TB, recs <-chan *proxy.Record, timeout time.Duration) *proxy.Record {
	t.Helper()
	select {
	case r := <-recs:
		return r
	case <-time.After(timeout):
		t.Fatalf("no connection record within %v", timeout)
		return nil
	}
}

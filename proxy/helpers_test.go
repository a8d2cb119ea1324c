package proxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// recordSink collects finished records for a test.
type recordSink struct {
	ch chan *Record
}

func newRecordSink() *recordSink { return &recordSink{ch: make(chan *Record, 64)} }

func (r *recordSink) sink(rec *Record) { r.ch <- rec }

// next waits for the next finished record.
func (r *recordSink) next(t *testing.T) *Record {
	t.Helper()
	select {
	case rec := <-r.ch:
		return rec
	case <-time.After(10 * time.Second):
		t.Fatal("no connection record within 10s")
		return nil
	}
}

// startProxy starts a proxy on a loopback port in front of upstream.
func startProxy(t *testing.T, upstream string, opts Options) (*Proxy, *recordSink) {
	t.Helper()
	rs := newRecordSink()
	if opts.Sink == nil {
		opts.Sink = rs.sink
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	p, err := New(Config{Name: "test", Listen: "127.0.0.1:0", Upstream: upstream}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, rs
}

// tapServer is a raw TCP upstream that runs fn on each connection and
// remembers what it received.
type tapServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startTapServer(t *testing.T, fn func(c *net.TCPConn)) *tapServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &tapServer{ln: ln}
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				fn(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); ts.wg.Wait() })
	return ts
}

func (ts *tapServer) addr() string { return ts.ln.Addr().String() }

// echo copies everything back until EOF, then half-closes.
func echo(c *net.TCPConn) {
	_, _ = io.Copy(c, c)
	_ = c.CloseWrite()
}

//go:build linux

package proxy_test

// What the proxy records about a close must be what went on the wire
// (issue 18). A Linux client tells a FIN from an RST by its read error:
// io.EOF for a FIN, ECONNRESET for an RST. Every client here sends a
// PRELOGIN first, as every real client does, and then more than one read
// buffer's worth, so that bytes sit unread in the proxy's receive queue when
// it closes: closing such a socket outright makes the kernel send RST
// instead of FIN (RFC 1122 4.2.2.13).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// verdictAt gives one verdict at one phase on every connection, and pauses
// each accept so that what a client sends at once is queued before the
// proxy sees the connection.
type verdictAt struct {
	phase Phase
	v     proxy.Verdict
	pause time.Duration
}

type Phase = proxy.Phase

func (d verdictAt) Connect(proxy.ConnInfo) proxy.ConnDecider { return d }

func (d verdictAt) Decide(ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	if ev.Phase == d.phase {
		return d.v
	}
	return proxy.Verdict{}
}

func (d verdictAt) BeforeAccept() (time.Duration, int) { return d.pause, 0 }

// serveUp runs handler on each connection to a loopback upstream.
func serveUp(t *testing.T, handler func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				handler(c)
			})
		}
	})
	return ln.Addr().String()
}

// answerPrelogin answers the first bytes with a PRELOGIN response and then
// reads everything.
func answerPrelogin(enc tds.Encryption) func(c net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 32<<10)
		if _, err := c.Read(buf); err != nil {
			return
		}
		_, _ = c.Write(preloginResponse(enc))
		_, _ = io.Copy(io.Discard, c)
	}
}

func wireProxy(t *testing.T, cfg proxy.Config, d proxy.Decider) (*proxy.Proxy, chan *proxy.Record) {
	t.Helper()
	recs := make(chan *proxy.Record, 16)
	cfg.Name, cfg.Listen = "wire", "127.0.0.1:0"
	p, err := proxy.New(cfg, proxy.Options{Decider: d, Sink: func(r *proxy.Record) { recs <- r }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, recs
}

func nextRecord(t *testing.T, recs chan *proxy.Record) *proxy.Record {
	t.Helper()
	select {
	case r := <-recs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no record within 10s")
		return nil
	}
}

// tail is more than the proxy reads at once (32 KiB), so some of it is
// still queued when the proxy closes.
var tail = make([]byte, 48<<10)

// rawClient dials addr, runs script (its writes' errors are the close's
// business, not the script's) and then reads until the connection ends. It
// returns "fin" (io.EOF) or "rst" (ECONNRESET) and what it read.
func rawClient(t *testing.T, addr string, script func(c net.Conn)) (string, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	script(c)
	got, err := io.ReadAll(c)
	switch {
	case err == nil:
		return "fin", got
	case errors.Is(err, syscall.ECONNRESET):
		return "rst", got
	}
	t.Fatalf("the client's read ended with %v, neither FIN nor RST", err)
	return "", nil
}

// awaitBytes reads until n bytes came (a PRELOGIN response).
func awaitBytes(t *testing.T, c net.Conn, n int) {
	t.Helper()
	if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
		t.Fatalf("waiting for %d bytes: %v", n, err)
	}
}

func TestCloseStyleIsWhatGoesOnTheWire(t *testing.T) {
	hello := wrapped(readHandshake(t, "clienthello-go126.bin"))
	sendPrelogin := func(c net.Conn) { _, _ = c.Write(preloginRequest(tds.EncryptOff)) }
	sendPreloginTail := func(c net.Conn) { sendPrelogin(c); _, _ = c.Write(tail) }
	upNotSup := answerPrelogin(tds.EncryptNotSup)
	upOn := answerPrelogin(tds.EncryptOn)
	respLen := len(preloginResponse(tds.EncryptOn))
	places := []struct {
		name   string
		phase  Phase
		up     func(c net.Conn)
		script func(t *testing.T, c net.Conn)
	}{
		{"accept", proxy.PhaseAccept, upNotSup, func(_ *testing.T, c net.Conn) { sendPreloginTail(c) }},
		{"prelogin", proxy.PhasePreloginRequest, upNotSup, func(_ *testing.T, c net.Conn) { sendPreloginTail(c) }},
		{"client hello", proxy.PhaseTLSClientHello, upOn, func(t *testing.T, c net.Conn) {
			sendPrelogin(c)
			awaitBytes(t, c, respLen)
			_, _ = c.Write(hello)
			_, _ = c.Write(tail)
		}},
		{"login7", proxy.PhaseLogin7, upNotSup, func(t *testing.T, c net.Conn) {
			sendPrelogin(c)
			awaitBytes(t, c, respLen)
			_, _ = c.Write(packet(tds.PacketLogin7, tds.StatusEOM, make([]byte, 94)))
			_, _ = c.Write(tail)
		}},
	}
	styles := []struct {
		style proxy.CloseStyle
		wire  string
		kind  proxy.CloseKind
	}{
		{proxy.StyleFIN, "fin", proxy.CloseFIN},
		{proxy.StyleRST, "rst", proxy.CloseRST},
		{proxy.StyleAlert, "fin", proxy.CloseAlert},
	}
	for _, pl := range places {
		for _, st := range styles {
			t.Run(pl.name+"/"+string(st.style), func(t *testing.T) {
				d := verdictAt{phase: pl.phase, pause: 100 * time.Millisecond,
					v: proxy.Verdict{Close: true, Style: st.style, Alert: 40, Rule: "close"}}
				p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, pl.up)}, d)
				wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) { pl.script(t, c) })
				rec := nextRecord(t, recs)
				if wire != st.wire {
					t.Errorf("the client got %s, want %s", wire, st.wire)
				}
				checkClose(t, rec, proxy.SideProxy, st.kind, pl.phase)
			})
		}
	}
}

// checkClose checks the recorded close, and that it does not own up to an
// RST after the FIN.
func checkClose(t *testing.T, rec *proxy.Record, by proxy.Side, kind proxy.CloseKind, phase Phase) {
	t.Helper()
	c := rec.Close
	if c == nil || c.By != by || c.Kind != kind || phase != "" && c.Phase != phase {
		t.Fatalf("close = %+v, want by %s kind %s in %q", c, by, kind, phase)
	}
	if strings.Contains(c.Reason, "then RST") || strings.Contains(c.Reason, "ended with an RST") {
		t.Errorf("close reason %q: the FIN close ended in an RST", c.Reason)
	}
}

// The other places a close happens: limits, generic faults (limit_data,
// reset), the API, and a close during a hold.
func TestEveryClosePathKeepsItsStyle(t *testing.T) {
	stage := func(dir proxy.Direction, s proxy.Stage, err error) proxy.Decider {
		if err != nil {
			t.Fatal(err)
		}
		return verdictAt{phase: proxy.PhaseAccept, v: proxy.Verdict{Rule: "g", Action: "stage", Stages: []proxy.DirectedStage{{Dir: dir, Stage: s}}}}
	}
	push := make([]byte, 500<<10)
	t.Run("limit_data upstream/fin", func(t *testing.T) {
		s, err := faults.NewLimitData(faults.LimitData{Bytes: 1000})
		p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, discardHandler)}, stage(proxy.ClientToServer, s, err))
		wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) {
			_, _ = c.Write(preloginRequest(tds.EncryptOff))
			_, _ = c.Write(push)
		})
		rec := nextRecord(t, recs)
		if wire != "fin" {
			t.Errorf("limit_data: the client got %s, want fin", wire)
		}
		checkClose(t, rec, proxy.SideProxy, proxy.CloseFIN, "")
	})
	t.Run("limit_data upstream/fin, the client pushing on", func(t *testing.T) {
		// More than the drain takes after the FIN (1 MiB): the close ends
		// with an RST, and the record owns up to it.
		s, err := faults.NewLimitData(faults.LimitData{Bytes: 1000})
		p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, discardHandler)}, stage(proxy.ClientToServer, s, err))
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		big := make([]byte, 1<<20)
		for range 8 {
			if _, err := c.Write(big); err != nil {
				break
			}
		}
		rec := nextRecord(t, recs)
		if c := rec.Close; c == nil || c.Kind != proxy.CloseFIN || !strings.Contains(c.Reason, "then RST") {
			t.Errorf("close = %+v, want fin with the RST after it in the reason", rec.Close)
		}
	})
	t.Run("reset upstream/rst", func(t *testing.T) {
		s, err := faults.NewReset(faults.Reset{AfterBytes: 1000})
		p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, discardHandler)}, stage(proxy.ClientToServer, s, err))
		wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) {
			_, _ = c.Write(preloginRequest(tds.EncryptOff))
			_, _ = c.Write(push)
		})
		rec := nextRecord(t, recs)
		if wire != "rst" {
			t.Errorf("reset: the client got %s, want rst", wire)
		}
		checkClose(t, rec, proxy.SideProxy, proxy.CloseRST, "")
	})
	for _, st := range []struct {
		style proxy.CloseStyle
		wire  string
	}{{proxy.StyleFIN, "fin"}, {proxy.StyleRST, "rst"}} {
		t.Run("max_connections/"+string(st.style), func(t *testing.T) {
			p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, discardHandler), MaxConnections: 1, LimitStyle: st.style},
				verdictAt{pause: 100 * time.Millisecond})
			hold, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer hold.Close()
			waitLive(t, p, 1)
			wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) {
				_, _ = c.Write(preloginRequest(tds.EncryptOff))
				_, _ = c.Write(tail)
			})
			rec := nextRecord(t, recs)
			if wire != st.wire {
				t.Errorf("the refused client got %s, want %s", wire, st.wire)
			}
			checkClose(t, rec, proxy.SideProxy, proxy.CloseLimit, proxy.PhaseAccept)
			if !strings.Contains(rec.Close.Reason, "with "+map[string]string{"fin": "a FIN", "rst": "an RST"}[st.wire]) {
				t.Errorf("reason %q does not say what was sent", rec.Close.Reason)
			}
		})
		t.Run("negotiation_timeout/"+string(st.style), func(t *testing.T) {
			p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, discardHandler), NegotiationTimeout: 300 * time.Millisecond, LimitStyle: st.style}, nil)
			wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) {
				_, _ = c.Write(preloginRequest(tds.EncryptOff)[:20]) // a partial PRELOGIN: still negotiating
			})
			rec := nextRecord(t, recs)
			if wire != st.wire {
				t.Errorf("the slow client got %s, want %s", wire, st.wire)
			}
			checkClose(t, rec, proxy.SideProxy, proxy.CloseTimeout, "")
			if !strings.Contains(rec.Close.Reason, "with "+map[string]string{"fin": "a FIN", "rst": "an RST"}[st.wire]) {
				t.Errorf("reason %q does not say what was sent", rec.Close.Reason)
			}
		})
		t.Run("shutdown/"+string(st.style), func(t *testing.T) {
			p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, discardHandler)}, nil)
			done := make(chan error, 1)
			wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) {
				_, _ = c.Write(preloginRequest(tds.EncryptOff))
				_, _ = c.Write(tail)
				waitLive(t, p, 1)
				ctx, cancel := context.WithCancel(context.Background())
				cancel() // no drain time: close what is open now
				go func() { done <- p.Shutdown(ctx, st.style == proxy.StyleRST) }()
			})
			rec := nextRecord(t, recs)
			if wire != st.wire {
				t.Errorf("the client got %s, want %s", wire, st.wire)
			}
			checkClose(t, rec, proxy.SideProxy, proxy.CloseShutdown, "")
			if !strings.Contains(rec.Close.Reason, "with "+map[string]string{"fin": "a FIN", "rst": "an RST"}[st.wire]) {
				t.Errorf("reason %q does not say what was sent", rec.Close.Reason)
			}
			<-done
		})
		kind := proxy.CloseKind(st.wire)
		for _, during := range []struct {
			name string
			d    proxy.Decider
		}{
			{"relay", nil},
			{"accept hold", verdictAt{phase: proxy.PhaseAccept, v: proxy.Verdict{Delay: 10 * time.Second, Rule: "hold"}}},
			{"server hold", verdictAt{phase: proxy.PhasePreloginResponse, v: proxy.Verdict{Delay: 10 * time.Second, Rule: "hold"}}},
		} {
			t.Run("api during "+during.name+"/"+string(st.style), func(t *testing.T) {
				p, recs := wireProxy(t, proxy.Config{Upstream: serveUp(t, answerPrelogin(tds.EncryptNotSup))}, during.d)
				wire, _ := rawClient(t, p.Addr().String(), func(c net.Conn) {
					_, _ = c.Write(preloginRequest(tds.EncryptOff))
					_, _ = c.Write(tail)
					id := waitLive(t, p, 1)
					if !p.CloseConnection(id, st.style, "closed by admin API") {
						t.Error("CloseConnection did not find the connection")
					}
				})
				rec := nextRecord(t, recs)
				if wire != st.wire {
					t.Errorf("the client got %s, want %s", wire, st.wire)
				}
				checkClose(t, rec, proxy.SideProxy, kind, "")
				if !strings.Contains(rec.Close.Reason, "closed by admin API") {
					t.Errorf("reason %q does not say the API closed it", rec.Close.Reason)
				}
			})
		}
	}
}

// waitLive waits until p has n live connections and returns the id of one.
func waitLive(t *testing.T, p *proxy.Proxy, n int) uint64 {
	t.Helper()
	var id uint64
	testkit.WaitFor(t, func() bool {
		cs := p.Connections()
		if len(cs) >= n {
			id = cs[0].ID
		}
		return len(cs) >= n
	}, 5*time.Second, fmt.Sprintf("%d live connections", n))
	return id
}

// A client that gives up during a hold is recorded when it left, and the
// upstream is released then, not when the hold would have ended.
func TestClientLeavingDuringHold(t *testing.T) {
	const hold = 6 * time.Second
	cases := []struct {
		name    string
		phase   Phase
		dial    bool // whether the upstream was dialled before the hold
		want    Phase
		latency bool // the hold is a downstream latency stage instead
		close   bool // the hold comes before an injected close
	}{
		{"accept hold", proxy.PhaseAccept, false, proxy.PhaseAccept, false, false},
		{"accept hold before a close", proxy.PhaseAccept, false, proxy.PhaseAccept, false, true},
		{"client bytes held", proxy.PhasePreloginRequest, true, proxy.PhaseAccept, false, false},
		// A delay before a close: the phase is reached (the fault acts
		// there), but the client still leaves during the hold.
		{"client bytes held before a close", proxy.PhasePreloginRequest, true, proxy.PhasePreloginRequest, false, true},
		{"server answer held", proxy.PhasePreloginResponse, true, proxy.PhasePreloginRequest, false, false},
		{"server answer held before a close", proxy.PhasePreloginResponse, true, proxy.PhasePreloginResponse, false, true},
		// The stage holds bytes the watcher has already seen: the record
		// shows the response's phase reached.
		{"downstream latency", "", true, proxy.PhasePreloginResponse, true, false},
	}
	for _, tc := range cases {
		for _, how := range []string{"fin", "rst"} {
			if tc.latency && how == "fin" {
				// A FIN may be a half-close: what the stage holds is still
				// delivered, and the record comes after it.
				continue
			}
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				upEnded := make(chan time.Time, 1)
				up := serveUp(t, func(c net.Conn) {
					answerPrelogin(tds.EncryptNotSup)(c)
					upEnded <- time.Now()
				})
				var d proxy.Decider = verdictAt{phase: tc.phase, v: proxy.Verdict{Delay: hold, Close: tc.close, Rule: "hold", Action: "delay"}}
				if tc.latency {
					lag, err := faults.NewLatency(faults.Latency{Delay: hold})
					if err != nil {
						t.Fatal(err)
					}
					d = verdictAt{phase: proxy.PhaseAccept, v: proxy.Verdict{Rule: "lag", Action: "latency",
						Stages: []proxy.DirectedStage{{Dir: proxy.ServerToClient, Stage: lag}}}}
				}
				p, recs := wireProxy(t, proxy.Config{Upstream: up}, d)
				c, err := net.Dial("tcp", p.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				_, _ = c.Write(preloginRequest(tds.EncryptOff))
				waitLive(t, p, 1)
				time.Sleep(300 * time.Millisecond) // the client's patience
				left := time.Now()
				if how == "rst" {
					_ = c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
				rec := nextRecord(t, recs)
				if took := time.Since(left); took > 2*time.Second {
					t.Errorf("the record came %v after the client left", took)
				}
				if d := rec.End.Sub(rec.Start); d > hold/2 {
					t.Errorf("duration %v, want about when the client left (hold %v)", d, hold)
				}
				checkClose(t, rec, proxy.SideClient, proxy.CloseKind(how), tc.want)
				if tc.dial {
					select {
					case at := <-upEnded:
						if at.Sub(left) > 2*time.Second {
							t.Errorf("the upstream was released %v after the client left", at.Sub(left))
						}
					case <-time.After(3 * time.Second):
						t.Error("the upstream was not released within 3s of the client leaving")
					}
				}
			})
		}
	}
}

package proxy_test

// Hostile peers against a running proxy (issue 7): passthrough with real
// fault rules armed (package faults, hence the external test package). For
// every case: the proxy stays up, other connections keep working (a
// go-mssqldb SELECT 1 through the same proxy to the emulator), the bad
// connection's bytes are relayed unchanged unless a limit or a rule closes
// it, and its record says what was wrong.
//
// Definitions used here for the two "wrong protocol at the wrong time"
// cases (MS-TDS §3.3.5.1; docs/protocol.md "TLS inside PRELOGIN"):
//   - TLS where a PRELOGIN was due (7.x path): the client opens with
//     PRELOGIN (0x12), the server answers ENCRYPT_ON, and the client then
//     sends its ClientHello as a raw TLS record (0x16) instead of inside a
//     PRELOGIN packet.
//   - PRELOGIN where TLS was due: (7.x) after the same exchange the client
//     sends a second plaintext PRELOGIN instead of the wrapped ClientHello;
//     (strict) the client opens with a ClientHello (TDS 8.0) and then sends
//     a plaintext PRELOGIN packet where only TLS records may follow.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

const (
	hostileProxyName = "hostile"
	hostileUser      = "sa"
	hostilePassword  = "Hostile-Pa55"
	// hostileSPID marks the PRELOGIN packets this file forges, so the
	// upstream router sends them to the scripted server while go-mssqldb
	// (SPID 0) goes to the emulator. A client's SPID field means nothing to
	// SQL Server (MS-TDS §2.2.3.1.4).
	hostileSPID = 0xBEEF
	// slowNegotiationTimeout is the deadline of the proxy the slowloris
	// case runs against: short, so the case ends fast. The main proxy keeps
	// a generous one: under -race on a loaded 2-core machine a healthy TLS
	// login during the 10,000-connection storm can take seconds.
	slowNegotiationTimeout = 2500 * time.Millisecond
	mainNegotiationTimeout = 30 * time.Second
	// stagedClient is a client address a latency rule matches: its
	// connections are relayed through a fault stage instead of splice.
	stagedClient = "127.0.0.2"
	// helloClient is matched by a latency rule that starts at
	// tls.client_hello.
	helloClient = "127.0.0.3"
)

// ---------------------------------------------------------------------------
// Environment: emulator, router upstream, proxy with rules, record store.

type hostileEnv struct {
	p      *proxy.Proxy
	emu    *emulator.Server
	router *router
	recs   *recordStore
	eng    *faults.Engine
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	emu, err := emulator.New(emulator.Config{Listen: "127.0.0.1:0", User: hostileUser, Password: hostilePassword})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	rt := startRouter(t, emu.Addr())

	eng := faults.NewEngine(nil)
	rules := []faults.RuleSpec{
		// Matches every connection; closes only a hello that offers no
		// TLS 1.2/1.3 (a real client here always passes).
		{Name: "tls12-only", Scenario: faults.ScenarioProtocolMismatch, Options: map[string]string{"server_tls": "1.2,1.3"}, Seed: 1},
		// Matches nothing (no client has this address).
		{Name: "latency-nobody", Action: "latency", Options: map[string]string{"delay": "50ms"}, Match: faults.Match{Clients: []string{"127.0.0.99"}}, Seed: 2},
		// Puts stagedClient's connections on the staged (userland) relay.
		{Name: "latency-staged", Action: "latency", Options: map[string]string{"delay": "1ms"}, Match: faults.Match{Clients: []string{stagedClient}}, Seed: 3},
		// A generic fault that starts at the ClientHello, for helloClient.
		{Name: "latency-at-hello", Action: "latency", Phase: string(proxy.PhaseTLSClientHello), Options: map[string]string{"delay": "1ms"},
			Match: faults.Match{Clients: []string{helloClient}}, Seed: 4},
	}
	if err := eng.SetRules(hostileProxyName, rules); err != nil {
		t.Fatal(err)
	}
	env := &hostileEnv{emu: emu, router: rt, recs: newRecordStore(), eng: eng}
	env.p = env.newProxy(t, mainNegotiationTimeout)
	return env
}

// newProxy starts a proxy in front of the router with the armed rules.
func (env *hostileEnv) newProxy(t *testing.T, negotiation time.Duration) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(proxy.Config{
		Name: hostileProxyName, Listen: "127.0.0.1:0", Upstream: env.router.addr(),
		NegotiationTimeout: negotiation,
	}, proxy.Options{Sink: env.recs.add, Decider: env.eng.Decider(hostileProxyName)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// recordStore keeps every finished record by client address. The sink must
// never block the proxy, even for 10,000 connections. Loopback reuses
// client ports quickly (tcp_tw_reuse), so a lookup also gives the time the
// client dialled.
type recordStore struct {
	mu     sync.Mutex
	byAddr map[string][]*proxy.Record
	order  []*proxy.Record
	n      int
	added  chan struct{}
}

func newRecordStore() *recordStore {
	return &recordStore{byAddr: map[string][]*proxy.Record{}, added: make(chan struct{}, 1)}
}

func (s *recordStore) add(r *proxy.Record) {
	s.mu.Lock()
	s.byAddr[r.Client] = append(s.byAddr[r.Client], r)
	s.order = append(s.order, r)
	s.n++
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
}

// closeKinds tallies how the records from the i-th on ended.
func (s *recordStore) closeKinds(from int) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.order[min(from, len(s.order)):] {
		k := "none"
		if r.Close != nil {
			k = string(r.Close.By) + "/" + string(r.Close.Kind)
		}
		out[k]++
	}
	return out
}

func (s *recordStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// wait returns the record of the connection from client that started
// after since, waiting up to 10s.
func (s *recordStore) wait(t *testing.T, client string, since time.Time) *proxy.Record {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		var r *proxy.Record
		s.mu.Lock()
		for _, x := range s.byAddr[client] {
			if !x.Start.Before(since) {
				r = x
			}
		}
		s.mu.Unlock()
		if r != nil {
			return r
		}
		select {
		case <-s.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no record for %s within 10s", client)
			return nil
		}
	}
}

// router is the proxy's one upstream. It looks at the first 8 bytes of each
// connection: a PRELOGIN header with SPID 0 (go-mssqldb) goes to the
// emulator, anything else to the scripted handler of the current case.
type router struct {
	ln      net.Listener
	emu     string
	wg      sync.WaitGroup
	mu      sync.Mutex
	handler func(c net.Conn)
	// toHostile sends every connection to the handler, go-mssqldb too.
	toHostile atomic.Bool
}

func startRouter(t *testing.T, emu string) *router {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &router{ln: ln, emu: emu, handler: discardHandler}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				r.route(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *router) addr() string { return r.ln.Addr().String() }

func (r *router) set(h func(c net.Conn)) {
	r.mu.Lock()
	r.handler = h
	r.mu.Unlock()
}

func (r *router) route(c net.Conn) {
	// Bounded: every handler runs under this overall deadline.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [tds.HeaderLen]byte
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	pc := &prefixConn{Conn: c, prefix: append([]byte(nil), b[:n]...)}
	if !r.toHostile.Load() && n == tds.HeaderLen && b[0] == byte(tds.PacketPrelogin) && b[4] == 0 && b[5] == 0 {
		pipeTo(pc, r.emu)
		return
	}
	r.mu.Lock()
	h := r.handler
	r.mu.Unlock()
	h(pc)
}

// prefixConn replays bytes already read from Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func closeWrite(c net.Conn) {
	if pc, ok := c.(*prefixConn); ok {
		c = pc.Conn
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}

// pipeTo relays c to addr both ways until both directions end.
func pipeTo(c net.Conn, addr string) {
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	_ = up.SetDeadline(time.Now().Add(30 * time.Second))
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		closeWrite(up)
		close(done)
	}()
	_, _ = io.Copy(c, up)
	closeWrite(c)
	<-done
}

func discardHandler(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// upResult is what a scripted upstream received and sent.
type upResult struct {
	got, sent []byte
}

// upReply is written once the upstream has received at least after bytes.
type upReply struct {
	after int
	data  []byte
}

// scripted returns a handler that records what it receives until EOF and
// writes each reply at its point; the result goes to the returned channel.
func scripted(replies ...upReply) (func(c net.Conn), chan upResult) {
	ch := make(chan upResult, 1)
	return func(c net.Conn) {
		var got, sent []byte
		next := 0
		buf := make([]byte, 32<<10)
		for {
			for next < len(replies) && len(got) >= replies[next].after {
				if _, err := c.Write(replies[next].data); err == nil {
					sent = append(sent, replies[next].data...)
				}
				next++
			}
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		closeWrite(c)
		select {
		case ch <- upResult{got: got, sent: sent}:
		default:
		}
	}, ch
}

func waitUp(t *testing.T, ch chan upResult) upResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never saw the connection end")
		return upResult{}
	}
}

// ---------------------------------------------------------------------------
// A raw client that runs a script of sends and waits.

type step struct {
	gap   time.Duration // pause before sending
	send  []byte
	await int // then wait until this many bytes in all were received
}

type clientResult struct {
	local     string
	since     time.Time // when the client dialled
	sent, got []byte
	readErr   error // how the read side ended (io.EOF for a FIN)
	writeErr  error
}

func runClient(t *testing.T, env *hostileEnv, from string, steps ...step) clientResult {
	t.Helper()
	return runClientTo(t, env.p, from, steps...)
}

func runClientTo(t *testing.T, p *proxy.Proxy, from string, steps ...step) clientResult {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	since := time.Now()
	c, err := d.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	res := clientResult{local: c.LocalAddr().String(), since: since}
	var mu sync.Mutex
	var got []byte
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			got = append(got, buf[:n]...)
			mu.Unlock()
			if err != nil {
				readDone <- err
				return
			}
		}
	}()
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	var readErr error
	readEnded := false
steps:
	for _, s := range steps {
		time.Sleep(s.gap)
		if _, err := c.Write(s.send); err != nil {
			res.writeErr = err
			break
		}
		res.sent = append(res.sent, s.send...)
		arrived := testkit.Poll(func() bool {
			if received() >= s.await {
				return true
			}
			select {
			case readErr = <-readDone:
				readEnded = true
				return true
			default:
				return false
			}
		}, 5*time.Second)
		if readEnded {
			break steps
		}
		if !arrived {
			t.Fatalf("waited 5s for %d bytes from the server, got %d", s.await, received())
		}
	}
	if res.writeErr == nil {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	if !readEnded {
		select {
		case readErr = <-readDone:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection was never closed")
		}
	}
	res.readErr = readErr
	mu.Lock()
	res.got = got
	mu.Unlock()
	return res
}

// ---------------------------------------------------------------------------
// Wire fixtures built with package tds and real captures.

// packet frames one TDS packet with the hostile SPID.
func packet(typ tds.PacketType, status tds.Status, payload []byte) []byte {
	b := make([]byte, tds.HeaderLen, tds.HeaderLen+len(payload))
	b[0], b[1] = byte(typ), byte(status)
	binary.BigEndian.PutUint16(b[2:], uint16(tds.HeaderLen+len(payload)))
	binary.BigEndian.PutUint16(b[4:], hostileSPID)
	b[6] = 1
	return append(b, payload...)
}

// preloginRequest is a well-formed client PRELOGIN (VERSION, ENCRYPTION
// OFF, INSTOPT, THREADID, MARS) with the hostile SPID.
func preloginRequest(enc tds.Encryption) []byte {
	p := &tds.Prelogin{}
	p.Set(tds.PreloginVersion, []byte{0x0F, 0, 0x07, 0xD0, 0, 0})
	p.Set(tds.PreloginEncryption, []byte{byte(enc)})
	p.Set(tds.PreloginInstance, []byte{0})
	p.Set(tds.PreloginThreadID, []byte{0, 0, 0, 1})
	p.Set(tds.PreloginMARS, []byte{0})
	return packet(tds.PacketPrelogin, tds.StatusEOM, p.Marshal())
}

// preloginResponse is a server PRELOGIN reply (type 0x04).
func preloginResponse(enc tds.Encryption) []byte {
	p := &tds.Prelogin{}
	p.Set(tds.PreloginVersion, tds.ProductVersion{Major: 16, Build: 1000}.Bytes())
	p.Set(tds.PreloginEncryption, []byte{byte(enc)})
	p.Set(tds.PreloginInstance, []byte{0})
	p.Set(tds.PreloginMARS, []byte{0})
	w := tds.Writer{}
	return w.AppendMessage(nil, tds.PacketReply, 0, p.Marshal())
}

// rawPrelogin builds a PRELOGIN payload from a hand-written option table
// (token, offset, length) and data area.
func rawPrelogin(table [][3]int, data []byte) []byte {
	var b []byte
	for _, e := range table {
		b = append(b, byte(e[0]), byte(e[1]>>8), byte(e[1]), byte(e[2]>>8), byte(e[2]))
	}
	b = append(b, 0xFF)
	return append(b, data...)
}

// wrapped carries TLS records in PRELOGIN packets, as TDS 7.x does.
func wrapped(records []byte) []byte {
	var out []byte
	for len(records) > 0 {
		n := min(len(records), 4096-tds.HeaderLen)
		st := tds.Status(0)
		if n == len(records) {
			st = tds.StatusEOM
		}
		out = append(out, packet(tds.PacketPrelogin, st, records[:n])...)
		records = records[n:]
	}
	return out
}

func readHandshake(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "tlsbridge", "testdata", "handshakes", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tlsRecord frames a handshake message in one TLS record.
func tlsRecord(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(body) >> 8), byte(len(body))}, body...)
}

// handshakeMsg frames a handshake body (RFC 8446 §4).
func handshakeMsg(typ byte, body []byte) []byte {
	return append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// malformedExtensions takes a real ClientHello record and makes its first
// extension claim more bytes than the extension block holds.
func malformedExtensions(t *testing.T, rec []byte) []byte {
	t.Helper()
	b := slices.Clone(rec)
	i := 5 + 4 + 2 + 32 // record header, handshake header, version, random
	i += 1 + int(b[i])  // session id
	i += 2 + int(binary.BigEndian.Uint16(b[i:]))
	i += 1 + int(b[i]) // compression methods
	i += 2             // extensions length
	if i+4 > len(b) {
		t.Fatal("fixture has no extensions")
	}
	binary.BigEndian.PutUint16(b[i+2:], 0xFFF0)
	return b
}

// helloWithExtensions is a TLS 1.3 ClientHello record with n extensions:
// supported_versions then n-1 empty extensions of unassigned types.
func helloWithExtensions(n int) []byte {
	body := []byte{3, 3}
	body = append(body, bytes.Repeat([]byte{0x42}, 32)...)
	body = append(body, 0)                            // session id
	body = append(body, 0, 4, 0x13, 0x01, 0xC0, 0x2F) // suites
	body = append(body, 1, 0)                         // compression
	ext := []byte{0x00, 0x2B, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03}
	for i := range n - 1 {
		ext = binary.BigEndian.AppendUint16(ext, uint16(0x5000+i))
		ext = append(ext, 0, 0)
	}
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	return tlsRecord(0x16, handshakeMsg(1, body))
}

// ---------------------------------------------------------------------------
// Health check: a real client through the same proxy.

// querySelectOne runs SELECT 1 through the proxy and returns the error.
func querySelectOne(addr, encrypt string) error {
	dsn := testkit.GoMSSQL{User: hostileUser, Password: hostilePassword, Encrypt: encrypt, AppName: "tdsproxy-hostile",
		Timeout: 10 * time.Second, Params: url.Values{"dial timeout": {"5"}}}.DSN(addr)
	v, err := testkit.QuerySelectOne(dsn, testkit.Query{Timeout: 20 * time.Second})
	if err == nil && v != 1 {
		err = fmt.Errorf("SELECT 1 = %d", v)
	}
	return err
}

func healthy(t *testing.T, env *hostileEnv) {
	t.Helper()
	healthyVia(t, env.p)
}

func healthyVia(t *testing.T, p *proxy.Proxy) {
	t.Helper()
	for _, enc := range []string{"disable", "false"} {
		if err := querySelectOne(p.Addr().String(), enc); err != nil {
			t.Errorf("a healthy client (encrypt=%s) through the same proxy failed: %v", enc, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Assertions on records.

func hasIssue(r *proxy.Record, dir, what, contains string) bool {
	for _, pi := range r.ParseIssues {
		if (dir == "" || pi.Direction == dir) && (what == "" || pi.What == what) && strings.Contains(pi.Error, contains) {
			return true
		}
	}
	return false
}

func hasNote(r *proxy.Record, contains string) bool {
	return slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, contains) })
}

func describe(r *proxy.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "id=%d client=%s protocol=%q phase=%s watching=%v", r.ID, r.Client, r.Protocol, r.Phase, r.Watching)
	if r.Close != nil {
		fmt.Fprintf(&b, " close=%s/%s in %s (%s)", r.Close.By, r.Close.Kind, r.Close.Phase, r.Close.Reason)
	}
	// At most a few of each list: a flood's record holds 32 of each.
	const show = 4
	for _, pi := range r.ParseIssues[:min(show, len(r.ParseIssues))] {
		fmt.Fprintf(&b, "\n  issue %s %s @%d: %s", pi.Direction, pi.What, pi.Offset, pi.Error)
	}
	for _, n := range r.Notes[:min(show, len(r.Notes))] {
		fmt.Fprintf(&b, "\n  note %s", n)
	}
	for _, f := range r.Faults[:min(show, len(r.Faults))] {
		fmt.Fprintf(&b, "\n  fault %s %s %s at %v: %s", f.Rule, f.Phase, f.Action, f.At, f.Detail)
	}
	if n := len(r.ParseIssues) + len(r.Notes) + len(r.Faults); n > 3*show || r.Dropped > 0 {
		fmt.Fprintf(&b, "\n  (%d issues, %d notes, %d faults listed; %d entries dropped)", len(r.ParseIssues), len(r.Notes), len(r.Faults), r.Dropped)
	}
	return b.String()
}

// recordBounded checks that a record stays small whatever the peer sent.
func recordBounded(t *testing.T, r *proxy.Record) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 64<<10 {
		t.Errorf("record is %d KiB of JSON (%d notes, %d issues, %d phases, %d faults)", len(b)>>10, len(r.Notes), len(r.ParseIssues), len(r.Phases), len(r.Faults))
	}
}

// relayedUnchanged checks both directions byte for byte.
func relayedUnchanged(t *testing.T, c clientResult, u upResult) {
	t.Helper()
	if !bytes.Equal(u.got, c.sent) {
		t.Errorf("client->server changed: client sent %d bytes, upstream got %d", len(c.sent), len(u.got))
	}
	if !bytes.Equal(c.got, u.sent) {
		t.Errorf("server->client changed: upstream sent %d bytes, client got %d", len(u.sent), len(c.got))
	}
}

// ---------------------------------------------------------------------------

// TestHostilePeers runs every hostile input against one proxy.
func TestHostilePeers(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile peers: long test")
	}
	env := newHostileEnv(t)
	healthy(t, env)

	goHello := readHandshake(t, "clienthello-go126.bin")
	strictHello := readHandshake(t, "clienthello-go126-strict.bin")
	tls10Hello := readHandshake(t, "tls10-openssl30-c2s.bin")
	preOn := preloginRequest(tds.EncryptOn)
	respOn := preloginResponse(tds.EncryptOn)

	// Cases relayed in passthrough, checked byte for byte; check inspects
	// the record.
	cases := []struct {
		name    string
		steps   []step
		replies []upReply
		check   func(t *testing.T, r *proxy.Record)
	}{
		{
			name:  "truncated TDS header",
			steps: []step{{send: []byte{0x12, 0x01, 0x00}}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Protocol != "tds7" || !hasIssue(r, "client->server", "", "ended inside") {
					t.Errorf("record does not say the header was truncated: %s", describe(r))
				}
			},
		},
		{
			name:  "packet length below 8",
			steps: []step{{send: []byte{0x12, 0x01, 0x00, 0x04, 0xBE, 0xEF, 1, 0, 'x', 'y'}}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasIssue(r, "client->server", "stream", "packet length out of range: 4") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name:  "packet length above 32768",
			steps: []step{{send: append([]byte{0x12, 0x01, 0x80, 0x01, 0xBE, 0xEF, 1, 0}, bytes.Repeat([]byte{0}, 512)...)}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasIssue(r, "client->server", "stream", "packet length out of range: 32769") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name:  "PRELOGIN offset past the end",
			steps: []step{{send: packet(tds.PacketPrelogin, tds.StatusEOM, rawPrelogin([][3]int{{0, 0x0100, 6}, {1, 11, 1}}, []byte{1, 2, 3, 4, 5, 6}))}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasIssue(r, "client->server", "PRELOGIN request", "out of bounds") || !r.Reached(proxy.PhasePreloginRequest) {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name: "PRELOGIN overlapping options",
			// ENCRYPTION's byte is inside VERSION's six.
			steps:   []step{{send: packet(tds.PacketPrelogin, tds.StatusEOM, rawPrelogin([][3]int{{0, 11, 6}, {1, 13, 1}}, []byte{0x0F, 0, 0x07, 0xD0, 0, 0}))}},
			replies: []upReply{{after: 1, data: preloginResponse(tds.EncryptNotSup)}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasNote(r, "overlap") {
					t.Errorf("record does not say the options overlap: %s", describe(r))
				}
			},
		},
		{
			name: "PRELOGIN duplicate options",
			steps: []step{{send: packet(tds.PacketPrelogin, tds.StatusEOM, rawPrelogin([][3]int{{0, 16, 6}, {1, 22, 1}, {1, 23, 1}},
				[]byte{0x0F, 0, 0x07, 0xD0, 0, 0, 0x00, 0x01}))}},
			replies: []upReply{{after: 1, data: preloginResponse(tds.EncryptNotSup)}},
			check: func(t *testing.T, r *proxy.Record) {
				pc := r.Prelogin
				if pc == nil || pc.Client == nil || !slices.Equal(pc.Client.Options, []string{"VERSION", "ENCRYPTION", "ENCRYPTION"}) {
					t.Errorf("prelogin = %+v", pc)
				}
				if !hasNote(r, "more than once") {
					t.Errorf("record does not say ENCRYPTION came twice: %s", describe(r))
				}
			},
		},
		{
			name:  "TLS record above 2^14+2048 (strict)",
			steps: []step{{send: append([]byte{0x16, 0x03, 0x01, 0x48, 0x01}, bytes.Repeat([]byte{1}, 1024)...)}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Protocol != "tds8-strict" || !hasIssue(r, "client->server", "stream", "18433") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name: "TLS record above 2^14+2048 (wrapped)",
			steps: []step{{send: preOn, await: len(respOn)},
				{send: wrapped(append([]byte{0x16, 0x03, 0x03, 0x48, 0x01}, bytes.Repeat([]byte{1}, 1024)...))}},
			replies: []upReply{{after: len(preOn), data: respOn}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasIssue(r, "client->server", "stream", "18433") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name:    "ClientHello with malformed extensions",
			steps:   []step{{send: preOn, await: len(respOn)}, {send: wrapped(malformedExtensions(t, goHello))}},
			replies: []upReply{{after: len(preOn), data: respOn}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasIssue(r, "client->server", "ClientHello", "malformed") || !r.Reached(proxy.PhaseTLSClientHello) {
					t.Errorf("record: %s", describe(r))
				}
				// The armed rule could not evaluate: it says so and does nothing.
				if len(r.Faults) != 1 || !strings.HasPrefix(r.Faults[0].Action, "skip") {
					t.Errorf("faults = %+v, want the rule to skip", r.Faults)
				}
			},
		},
		{
			name:  "ClientHello with 1,000 extensions",
			steps: []step{{send: helloWithExtensions(1000)}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.TLS == nil || r.TLS.ClientHello == nil || len(r.TLS.ClientHello.Extensions) != 1000 {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name:  "HTTP request instead of TDS",
			steps: []step{{send: []byte("GET / HTTP/1.1\r\nHost: sql.example.com\r\n\r\n")}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Protocol != "not-tds" || !hasIssue(r, "client->server", "first byte", "0x47") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name:    "TLS ClientHello where a PRELOGIN was due (7.x)",
			steps:   []step{{send: preOn, await: len(respOn)}, {send: goHello}},
			replies: []upReply{{after: len(preOn), data: respOn}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Protocol != "tds7" || !hasNote(r, "raw") {
					t.Errorf("record does not say the handshake came unwrapped: %s", describe(r))
				}
			},
		},
		{
			name:    "PRELOGIN where TLS was due (7.x)",
			steps:   []step{{send: preOn, await: len(respOn)}, {send: preOn}},
			replies: []upReply{{after: len(preOn), data: respOn}},
			check: func(t *testing.T, r *proxy.Record) {
				if !hasNote(r, "unexpected PRELOGIN message") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			name:  "PRELOGIN where TLS was due (strict)",
			steps: []step{{send: strictHello}, {gap: 20 * time.Millisecond, send: preOn}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Protocol != "tds8-strict" || !hasIssue(r, "client->server", "stream", "TDS 8.0") {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
		{
			// 8-byte SQL batch packets after PRELOGIN: each one adds a
			// note; uncapped, 1 MiB of them made an 11 MB record.
			name:  "flood of tiny unexpected packets",
			steps: []step{{send: preOn}, {send: bytes.Repeat(packet(tds.PacketSQLBatch, tds.StatusEOM, nil), (1<<20)/tds.HeaderLen)}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Dropped == 0 {
					t.Errorf("record: %s", describe(r))
				}
				recordBounded(t, r)
			},
		},
		{
			// 1 MiB of plaintext alert records after a ClientHello: each
			// alert becomes an AlertInfo; uncapped, a 33 MB record.
			name:  "flood of TLS alerts",
			steps: []step{{send: strictHello}, {send: bytes.Repeat(tlsRecord(0x15, bytes.Repeat([]byte{1, 0}, 8192)), 64)}},
			check: func(t *testing.T, r *proxy.Record) {
				if r.Dropped == 0 {
					t.Errorf("record: %s", describe(r))
				}
				recordBounded(t, r)
			},
		},
		{
			// 1 MiB of tiny ClientHellos: each marks a tls.client_hello
			// phase and asks the decider; uncapped, tens of thousands of
			// phases.
			name:  "flood of ClientHellos",
			steps: []step{{send: bytes.Repeat(helloWithExtensions(1), (1<<20)/len(helloWithExtensions(1)))}},
			check: func(t *testing.T, r *proxy.Record) {
				recordBounded(t, r)
			},
		},
		{
			name:  "server answers garbage",
			steps: []step{{send: preOn}},
			replies: []upReply{{after: len(preOn), data: func() []byte {
				g := make([]byte, 4096)
				rnd := rand.New(rand.NewPCG(7, 7))
				for i := range g {
					g[i] = byte(rnd.Uint32())
				}
				g[0] = 0xA7 // neither a TDS packet type the watcher expects nor a TLS record
				return g
			}()}},
			check: func(t *testing.T, r *proxy.Record) {
				if len(r.ParseIssues) == 0 || r.ParseIssues[0].Direction != "server->client" {
					t.Errorf("record: %s", describe(r))
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, ch := scripted(tc.replies...)
			env.router.set(h)
			c := runClient(t, env, "", tc.steps...)
			u := waitUp(t, ch)
			relayedUnchanged(t, c, u)
			r := env.recs.wait(t, c.local, c.since)
			tc.check(t, r)
			t.Logf("%s", describe(r))
			healthy(t, env)
		})
	}

	// Twenty ClientHellos in one write from a client a generic rule matches
	// at tls.client_hello: the rule's stages start once. Attaching them at
	// every hello would chain one more latency stage per hello: a flood of
	// 1 MiB of tiny hellos would stack tens of thousands of stages, each
	// chunk then waiting for all of them.
	t.Run("generic fault starts once under a hello flood", func(t *testing.T) {
		h, ch := scripted()
		env.router.set(h)
		c := runClient(t, env, helloClient, step{send: bytes.Repeat(helloWithExtensions(1), 20)}, step{send: []byte("after")})
		u := waitUp(t, ch)
		relayedUnchanged(t, c, u)
		r := env.recs.wait(t, c.local, c.since)
		n := 0
		for _, f := range r.Faults {
			if f.Rule == "latency-at-hello" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the latency rule was attached %d times (+%d dropped entries), want once: %s", n, r.Dropped, describe(r))
		}
		healthy(t, env)
	})

	// An old client (a real OpenSSL TLS 1.0 ClientHello) meets the armed
	// protocol-mismatch rule: the proxy closes as the emulated TLS 1.2
	// server would, and the hello never reaches the upstream.
	t.Run("armed rule closes a TLS 1.0 hello", func(t *testing.T) {
		h, ch := scripted(upReply{after: len(preOn), data: respOn})
		env.router.set(h)
		c := runClient(t, env, "", step{send: preOn, await: len(respOn)}, step{send: wrapped(tls10Hello)})
		u := waitUp(t, ch)
		if !bytes.Equal(u.got, preOn) {
			t.Errorf("upstream got %d bytes, want only the PRELOGIN (%d)", len(u.got), len(preOn))
		}
		if !errors.Is(c.readErr, syscall.ECONNRESET) {
			t.Errorf("client read ended with %v, want a reset", c.readErr)
		}
		r := env.recs.wait(t, c.local, c.since)
		if r.Close == nil || r.Close.By != proxy.SideProxy || r.Close.Kind != proxy.CloseRST ||
			len(r.Faults) == 0 || r.Faults[0].Rule != "tls12-only" {
			t.Errorf("record: %s", describe(r))
		}
		healthy(t, env)
	})

	// Slowloris: one byte per second, against a proxy whose negotiation
	// deadline is 2.5 s. The deadline closes it; what was sent before the
	// close was relayed unchanged; a real client through the same proxy
	// meanwhile is fine.
	t.Run("one byte per second", func(t *testing.T) {
		slow := env.newProxy(t, slowNegotiationTimeout)
		h, ch := scripted()
		env.router.set(h)
		msg := preOn
		var steps []step
		for i := range 8 { // bounded: 8 s at most, the deadline is 2.5 s
			steps = append(steps, step{gap: time.Second, send: msg[i : i+1]})
		}
		start := time.Now()
		other := make(chan error, 1)
		go func() { time.Sleep(200 * time.Millisecond); other <- querySelectOne(slow.Addr().String(), "disable") }()
		c := runClientTo(t, slow, "", steps...)
		u := waitUp(t, ch)
		if !bytes.HasPrefix(c.sent, u.got) {
			t.Errorf("upstream got % x, not a prefix of what was sent % x", u.got, c.sent)
		}
		r := env.recs.wait(t, c.local, c.since)
		if r.Close == nil || r.Close.By != proxy.SideProxy || r.Close.Kind != proxy.CloseTimeout || !hasNote(r, "negotiation timeout") {
			t.Errorf("record: %s", describe(r))
		}
		if c.writeErr == nil && c.readErr == io.EOF {
			t.Errorf("the slow client was not cut off")
		}
		t.Logf("cut off after %v and %d bytes; %s", time.Since(start).Round(100*time.Millisecond), len(c.sent), describe(r))
		if err := <-other; err != nil {
			t.Errorf("a real client through the same proxy during the slowloris: %v", err)
		}
		healthyVia(t, slow)
	})

	// A client that never reads while the server streams: TCP flow control
	// must stop the upstream, not the proxy's heap. Spliced (no stage) and
	// staged (a latency rule on the connection) relays both.
	for _, from := range []string{"127.0.0.1", stagedClient} {
		name := "client never reads (splice)"
		if from == stagedClient {
			name = "client never reads (staged relay)"
		}
		t.Run(name, func(t *testing.T) { neverReads(t, env, from) })
	}

	// A server that answers garbage, seen by a real client.
	t.Run("server answers garbage to go-mssqldb", func(t *testing.T) {
		garbage := bytes.Repeat([]byte("\xA7garbage "), 512)
		h, ch := scripted(upReply{after: 1, data: garbage})
		env.router.set(h)
		env.router.toHostile.Store(true)
		err := querySelectOne(env.p.Addr().String(), "disable")
		env.router.toHostile.Store(false)
		if err == nil {
			t.Fatal("go-mssqldb accepted garbage")
		}
		u := waitUp(t, ch)
		t.Logf("go-mssqldb: %v (upstream got %d bytes)", err, len(u.got))
		healthy(t, env)
	})

	t.Run("10,000 connections open and close at once", func(t *testing.T) { storm(t, env) })
}

// neverReads streams from the upstream to a client that never reads and
// checks the proxy's heap while the upstream is blocked.
func neverReads(t *testing.T, env *hostileEnv, from string) {
	const chunk = 64 << 10
	const ceiling = 1 << 30 // bounded: stop at 1 GiB even if nothing blocks
	type streamed struct {
		n       int64
		blocked bool
	}
	blocked := make(chan streamed, 1)
	release := make(chan struct{})
	env.router.set(func(c net.Conn) {
		// Garbage: the watcher gives up at once, so the relay is the plain one.
		buf := bytes.Repeat([]byte{0xAB}, chunk)
		var n int64
		st := streamed{}
		for n < ceiling {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			m, err := c.Write(buf)
			n += int64(m)
			if err != nil {
				st.blocked = errors.Is(err, os.ErrDeadlineExceeded)
				break
			}
		}
		st.n = n
		blocked <- st
		<-release
	})
	defer env.router.set(discardHandler)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	since := time.Now()
	c, err := d.Dial("tcp", env.p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(preloginRequest(tds.EncryptOff)); err != nil {
		t.Fatal(err)
	}
	// Meanwhile, another client works.
	healthy(t, env)
	var st streamed
	select {
	case st = <-blocked:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("the upstream was never blocked")
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("upstream wrote %.1f MiB before TCP flow control blocked it (blocked=%v); proxy process HeapInuse %+.1f MiB (%.1f -> %.1f MiB)",
		float64(st.n)/(1<<20), st.blocked, float64(growth)/(1<<20), float64(before.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20))
	if !st.blocked {
		t.Errorf("the upstream wrote %d bytes without being blocked", st.n)
	}
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MiB while a client did not read", growth>>20)
	}
	close(release)
	c.Close()
	r := env.recs.wait(t, c.LocalAddr().String(), since)
	if len(r.ParseIssues) == 0 || r.ParseIssues[0].Direction != "server->client" {
		t.Errorf("record: %s", describe(r))
	}
	if from == stagedClient && (len(r.Faults) == 0 || r.Faults[0].Rule != "latency-staged") {
		t.Errorf("faults = %+v, want the latency stage", r.Faults)
	}
}

// storm opens and closes 10,000 connections, 200 at a time, in three
// styles (FIN at once, RST at once, one byte then FIN), while a real
// client keeps working.
func storm(t *testing.T, env *hostileEnv) {
	const total, workers = 10000, 200
	env.router.set(discardHandler)
	baseGoroutines := runtime.NumGoroutine()
	startRecords := env.recs.count()
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 5 * time.Second}
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				c, err := d.Dial("tcp", env.p.Addr().String())
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				switch i % 3 {
				case 0:
					_ = c.(*net.TCPConn).SetLinger(0)
				case 1:
					_, _ = c.Write([]byte{0x12})
				}
				c.Close()
			}
		}()
	}
	healthErr := make(chan error, 1)
	go func() { healthErr <- querySelectOne(env.p.Addr().String(), "false") }()
	wg.Wait()
	elapsed := time.Since(start)
	if err := <-healthErr; err != nil {
		t.Errorf("a real client during the storm failed: %v", err)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d dials failed, first: %v", n, total, firstErr.Load())
	}
	// Every connection ends and is recorded; nothing stays behind.
	testkit.Poll(func() bool { return env.recs.count()-startRecords >= total && len(env.p.Connections()) == 0 }, 30*time.Second)
	got := env.recs.count() - startRecords
	if got < total {
		t.Errorf("%d records for %d connections", got, total)
	}
	if n := len(env.p.Connections()); n > 0 {
		t.Errorf("%d connections still open", n)
	}
	if env.p.Rejected() != 0 {
		t.Errorf("%d connections rejected by max_connections", env.p.Rejected())
	}
	var g int
	testkit.Poll(func() bool { g = runtime.NumGoroutine(); return g <= baseGoroutines+10 }, 5*time.Second)
	if g > baseGoroutines+10 {
		t.Errorf("goroutines: %d before, %d after", baseGoroutines, g)
	}
	t.Logf("%d connections in %v (%.0f/s); %d records, closes %v; goroutines %d -> %d", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), got, env.recs.closeKinds(startRecords), baseGoroutines, g)
	healthy(t, env)
}

package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"hash"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// hashingConn hashes what passes through a conn each way.
type hashingConn struct {
	net.Conn
	mu          sync.Mutex
	read, wrote hash.Hash
	nr, nw      int64
}

func newHashingConn(c net.Conn) *hashingConn {
	return &hashingConn{Conn: c, read: sha256.New(), wrote: sha256.New()}
}

func (h *hashingConn) Read(b []byte) (int, error) {
	n, err := h.Conn.Read(b)
	h.mu.Lock()
	h.read.Write(b[:n])
	h.nr += int64(n)
	h.mu.Unlock()
	return n, err
}

func (h *hashingConn) Write(b []byte) (int, error) {
	n, err := h.Conn.Write(b)
	h.mu.Lock()
	h.wrote.Write(b[:n])
	h.nw += int64(n)
	h.mu.Unlock()
	return n, err
}

func (h *hashingConn) sums() (read, wrote string, nr, nw int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("%x", h.read.Sum(nil)), fmt.Sprintf("%x", h.wrote.Sum(nil)), h.nr, h.nw
}

// hashingDialer records the client's conn so a test can hash what the client
// sent and received.
type hashingDialer struct {
	mu    sync.Mutex
	conns []*hashingConn
}

func (d *hashingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	h := newHashingConn(c)
	d.mu.Lock()
	d.conns = append(d.conns, h)
	d.mu.Unlock()
	return h, nil
}

// upstreamTap sits between the proxy and the emulator and hashes what the
// upstream received and sent.
type upstreamTap struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*hashingConn
	wg    sync.WaitGroup
}

func startUpstreamTap(t *testing.T, target string) *upstreamTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ut := &upstreamTap{ln: ln}
	ut.wg.Add(1)
	go func() {
		defer ut.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			// The hashing conn faces the emulator: what it writes is what the
			// upstream received.
			h := newHashingConn(up)
			ut.mu.Lock()
			ut.conns = append(ut.conns, h)
			ut.mu.Unlock()
			ut.wg.Add(2)
			go func() {
				defer ut.wg.Done()
				io.Copy(h, c)
				h.Conn.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				defer ut.wg.Done()
				io.Copy(c, h)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ut.mu.Lock()
		for _, h := range ut.conns {
			h.Close()
		}
		ut.mu.Unlock()
		ut.wg.Wait()
	})
	return ut
}

// strictParams makes go-mssqldb verify the emulator's certificate: in strict
// mode it ignores TrustServerCertificate (msdsn parseTLS).
func strictParams(t *testing.T, emu *emulator.Server) url.Values {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return url.Values{"certificate": {f}, "hostNameInCertificate": {"localhost"}}
}

func phases(r *Record) []Phase {
	var out []Phase
	for _, m := range r.Phases {
		out = append(out, m.Phase)
	}
	return out
}

// go-mssqldb through the proxy to the emulator in every encryption mode: the
// query works, the bytes are relayed exactly, and the record says how the
// connection negotiated.
func TestGoMSSQLThroughProxy(t *testing.T) {
	cases := []struct {
		name        string
		encrypt     string // go-mssqldb encrypt=
		server      tds.Encryption
		tlsMax      uint16
		emuMax      uint16
		protocol    Protocol
		scope       string
		wantTLS     string // negotiated version, "" for none
		wantPhases  []Phase
		loginVis    bool
		loginResult LoginOutcome
		alpn        string
	}{
		{name: "disable", encrypt: "disable", server: tds.EncryptOff, protocol: "tds7", scope: "none",
			wantPhases: []Phase{PhaseAccept, PhasePreloginRequest, PhasePreloginResponse, PhaseLogin7, PhaseLoginResponse, PhaseEstablished, PhaseClosed},
			loginVis:   true, loginResult: "ok"},
		{name: "false-login-only-tls12", encrypt: "false", server: tds.EncryptOff, tlsMax: tls.VersionTLS12, protocol: "tds7", scope: "login-only", wantTLS: "TLS 1.2",
			wantPhases:  []Phase{PhaseAccept, PhasePreloginRequest, PhasePreloginResponse, PhaseTLSClientHello, PhaseTLSServerHello, PhaseTLSClientFinished, PhaseTLSServerFinished, PhaseLogin7, PhaseLoginResponse, PhaseEstablished, PhaseClosed},
			loginResult: "ok"},
		{name: "true-session-tls12", encrypt: "true", server: tds.EncryptOff, tlsMax: tls.VersionTLS12, protocol: "tds7", scope: "session", wantTLS: "TLS 1.2",
			wantPhases:  []Phase{PhaseAccept, PhasePreloginRequest, PhasePreloginResponse, PhaseTLSClientHello, PhaseTLSServerHello, PhaseTLSClientFinished, PhaseTLSServerFinished, PhaseLogin7, PhaseLoginResponse, PhaseEstablished, PhaseClosed},
			loginResult: "unknown"},
		{name: "true-session-tls13", encrypt: "true", server: tds.EncryptOn, emuMax: tls.VersionTLS13, protocol: "tds7", scope: "session", wantTLS: "TLS 1.3",
			wantPhases:  []Phase{PhaseAccept, PhasePreloginRequest, PhasePreloginResponse, PhaseTLSClientHello, PhaseTLSServerHello, PhaseTLSServerFinished, PhaseTLSClientFinished, PhaseLogin7, PhaseLoginResponse, PhaseEstablished, PhaseClosed},
			loginResult: "unknown"},
		{name: "strict-tls13", encrypt: "strict", server: tds.EncryptOff, protocol: "tds8-strict", wantTLS: "TLS 1.3", alpn: "tds/8.0",
			wantPhases:  []Phase{PhaseAccept, PhaseTLSClientHello, PhaseTLSServerHello, PhaseTLSServerFinished, PhaseTLSClientFinished, PhasePreloginRequest, PhasePreloginResponse, PhaseLogin7, PhaseLoginResponse, PhaseEstablished, PhaseClosed},
			loginResult: "unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tc.server, User: "sa", Password: "Secret-Pa55", TLSMax: tc.emuMax})
			tap := startUpstreamTap(t, emu.Addr())
			p, rs := startProxy(t, tap.ln.Addr().String(), Options{})
			d := &hashingDialer{}
			var extra url.Values
			if tc.encrypt == "strict" {
				extra = strictParams(t, emu)
			}
			v, err := testkit.SelectOne(t, testkit.GoDSN(p.Addr().String(), tc.encrypt, extra), testkit.Query{Dialer: d, TLS: testkit.MaxTLS(tc.tlsMax)})
			if err != nil {
				t.Fatalf("SELECT 1 through the proxy: %v", err)
			}
			if v != 1 {
				t.Fatalf("SELECT 1 = %d", v)
			}
			rec := rs.next(t)
			// Byte-exact: the upstream got exactly what the client sent, and
			// the client exactly what the upstream sent.
			if len(d.conns) != 1 || len(tap.conns) != 1 {
				t.Fatalf("connections: client %d, upstream %d; want 1 each", len(d.conns), len(tap.conns))
			}
			// The record can be out before the tap has read the client's
			// last bytes (TLS close_notify): wait for the counts to meet.
			cRead, cWrote, cnr, cnw := d.conns[0].sums()
			var uRead, uWrote string
			var unr, unw int64
			testkit.Poll(func() bool {
				uRead, uWrote, unr, unw = tap.conns[0].sums()
				_, _, cnr, _ = d.conns[0].sums()
				return unw >= cnw && cnr >= unr
			}, 5*time.Second)
			cRead, cWrote, cnr, cnw = d.conns[0].sums()
			if cWrote != uWrote || cnw != unw {
				t.Errorf("client->server not byte-exact: client wrote %d bytes (%s), upstream got %d (%s)", cnw, cWrote[:12], unw, uWrote[:12])
			}
			if cRead != uRead || cnr != unr {
				t.Errorf("server->client not byte-exact: upstream sent %d bytes (%s), client got %d (%s)", unr, uRead[:12], cnr, cRead[:12])
			}
			if rec.BytesClientToServer != cnw || rec.BytesServerToClient != cnr {
				t.Errorf("record bytes %d/%d, client saw %d/%d", rec.BytesClientToServer, rec.BytesServerToClient, cnw, cnr)
			}
			if rec.Protocol != tc.protocol {
				t.Errorf("protocol = %q, want %q", rec.Protocol, tc.protocol)
			}
			if got := phases(rec); !slices.Equal(got, tc.wantPhases) {
				t.Errorf("phases =\n  %v\nwant\n  %v", got, tc.wantPhases)
			}
			if tc.scope != "" && (rec.Prelogin == nil || rec.Prelogin.Scope != tc.scope) {
				t.Errorf("prelogin = %+v, want scope %s", rec.Prelogin, tc.scope)
			}
			if tc.protocol == "tds7" {
				if rec.Prelogin == nil || rec.Prelogin.Client == nil || rec.Prelogin.Client.ConnectionID == "" {
					t.Errorf("prelogin client side missing or without connection id: %+v", rec.Prelogin)
				}
			}
			if tc.wantTLS != "" {
				if rec.TLS == nil || rec.TLS.Version != tc.wantTLS {
					t.Fatalf("tls = %+v, want version %s", rec.TLS, tc.wantTLS)
				}
				if rec.TLS.CipherSuite == "" || rec.TLS.ClientHello == nil || rec.TLS.ClientHello.JA4 == "" {
					t.Errorf("tls record incomplete: %+v", rec.TLS)
				}
				if rec.TLS.Wrapped != (tc.protocol == "tds7") {
					t.Errorf("tls.wrapped = %v for %s", rec.TLS.Wrapped, tc.protocol)
				}
				if tc.wantTLS == "TLS 1.2" {
					if len(rec.TLS.Certificates) == 0 || rec.TLS.Certificates[0].SignatureAlgorithm != "SHA256-RSA" {
						t.Errorf("certificates = %+v, want a SHA256-RSA leaf", rec.TLS.Certificates)
					}
				}
				if tc.alpn != "" && !slices.Contains(rec.TLS.ClientHello.ALPN, tc.alpn) {
					t.Errorf("ALPN = %v, want %s", rec.TLS.ClientHello.ALPN, tc.alpn)
				}
			} else if rec.TLS != nil {
				t.Errorf("unexpected TLS record %+v", rec.TLS)
			}
			if rec.Login == nil || rec.Login.Visible != tc.loginVis || rec.Login.Outcome != tc.loginResult {
				t.Errorf("login = %+v, want visible=%v outcome=%s", rec.Login, tc.loginVis, tc.loginResult)
			}
			if tc.loginVis && (rec.Login.User != "sa" || rec.Login.Library != "go-mssqldb" || rec.Login.App != "tdsproxy-test") {
				t.Errorf("login fields = %+v", rec.Login)
			}
			// The client ends the session. With TLS the server answers the
			// client's close_notify with its own FIN within microseconds on
			// loopback, so the proxy may notice either FIN first.
			okBy := rec.Close != nil && (rec.Close.By == SideClient || (tc.wantTLS != "" && rec.Close.By == SideServer))
			if !okBy || rec.Close.Kind != CloseFIN || rec.Close.Phase != PhaseEstablished {
				t.Errorf("close = %+v, want client fin in established", rec.Close)
			}
			if len(rec.ParseIssues) > 0 {
				t.Errorf("parse issues: %+v", rec.ParseIssues)
			}
		})
	}
}

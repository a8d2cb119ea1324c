package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// startBridgeTo runs a bridge proxy (docs/bridge.md) in front of the
// emulator emu, trusting its certificate upstream; it returns the port,
// the records, and the CA clients must trust.
func startBridgeTo(t *testing.T, upstream string, upstreamPEM []byte) (int, <-chan *proxy.Record, []byte) {
	t.Helper()
	dir := t.TempDir()
	upCA := filepath.Join(dir, "upstream.pem")
	if err := os.WriteFile(upCA, upstreamPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	sink, recs := proxykit.Records(64)
	p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: upstream,
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}}, proxy.Options{Sink: sink})
	return proxykit.Port(p), recs, p.BridgeCAPEM()
}

// bridgeMSSQLMode is go-mssqldb trusting the bridge's CA (mssqlMode pins
// one exact certificate, which a per-host leaf is not known in advance).
func bridgeMSSQLMode(encrypt string) clientMode {
	return clientMode{ClientGoMSSQLDB, "encrypt=" + encrypt, func(ctx context.Context, t *testing.T, port int, pw, q string, ca []byte) (*Result, error) {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		return RunMSSQL(ctx, MSSQLConfig{Port: port, User: emuUser, Password: pw, Encrypt: encrypt, Query: q, Timeout: time.Minute,
			TLS: func(c *tls.Config) { c.RootCAs = pool }})
	}}
}

// Real clients through a bridge to the emulator, in every mode each has:
// the query result, and the record's decrypted login, LOGINACK version,
// 18456 for a wrong password and 2812 for an unknown procedure; and the
// JA4 of the hello sent upstream equals the client's (mirroring).
func TestClientsThroughBridge(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	port, recs, ca := startBridgeTo(t, emu.Addr(), emu.CertificatePEM())
	cases := []struct {
		cm    clientMode
		scope string // "" for strict
		tls   bool
	}{
		{bridgeMSSQLMode("disable"), "none", false},
		{bridgeMSSQLMode("false"), "login-only", true},
		{bridgeMSSQLMode("true"), "session", true},
		{bridgeMSSQLMode("strict"), "", true},
		{tediousMode(false, false), "none", false},
		{tediousMode(true, false), "session", true},
		{tediousMode("strict", false), "", true},
		{tsqlMode("off"), "none", false},
		{tsqlMode("request"), "login-only", true},
		{tsqlMode("require"), "session", true},
	}
	for _, tc := range cases {
		t.Run(tc.cm.client+"/"+tc.cm.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := tc.cm.run(ctx, t, port, emuPassword, "SELECT 1", ca)
			if err != nil || !res.OK {
				t.Fatalf("SELECT 1: %v: error %q cause %q\nstderr: %s", err, res.Error, res.Cause, res.Stderr)
			}
			if want := [][]string{{"1"}}; !reflect.DeepEqual(res.Rows, want) {
				t.Errorf("rows %q, want %q", res.Rows, want)
			}
			r := nextRecord(t, recs)
			b := r.Bridge
			if b == nil || b.Scope != tc.scope {
				t.Fatalf("bridge %+v, want scope %q", b, tc.scope)
			}
			if r.Login == nil || !r.Login.Visible || r.Login.User != emuUser || r.Login.App == "" ||
				r.Login.Outcome != proxy.LoginOK || b.LoginAckVersion == "" {
				t.Errorf("login %+v loginack %q", r.Login, b.LoginAckVersion)
			}
			if tc.tls {
				checkMirrorJA4(t, b.ClientJA4, b.UpstreamJA4, b.DroppedFromMirror)
				t.Logf("%s %s: client %s/%s upstream %s/%s JA4 %s / %s, %d dropped", tc.cm.client, tc.cm.mode,
					b.ClientTLS.Version, b.ClientTLS.CipherSuite, b.UpstreamTLS.Version, b.UpstreamTLS.CipherSuite, b.ClientJA4, b.UpstreamJA4, len(b.DroppedFromMirror))
			}
			res, _ = tc.cm.run(ctx, t, port, "not-"+emuPassword, "SELECT 1", ca)
			if res == nil || res.OK {
				t.Fatal("a wrong password logged in")
			}
			r = nextRecord(t, recs)
			if r.Login == nil || r.Login.Outcome != proxy.LoginFailed || r.Login.ErrorNumber != 18456 ||
				len(r.Bridge.Errors) == 0 || r.Bridge.Errors[0].Message != "Login failed for user '"+emuUser+"'." {
				t.Errorf("wrong password: login %+v errors %+v", r.Login, r.Bridge.Errors)
			}
			res, _ = tc.cm.run(ctx, t, port, emuPassword, "EXEC tdsproxy_nope", ca)
			if res == nil || res.OK {
				t.Fatal("EXEC tdsproxy_nope succeeded")
			}
			r = nextRecord(t, recs)
			if r.Login == nil || r.Login.Outcome != proxy.LoginOK || len(r.Bridge.Errors) == 0 ||
				r.Bridge.Errors[0].Number != 2812 || r.Bridge.Errors[0].Class != 16 {
				t.Errorf("unknown procedure: login %+v errors %+v", r.Login, r.Bridge.Errors)
			}
		})
	}
}

// checkMirrorJA4: with nothing dropped but supported groups (which JA4
// does not cover), the upstream hello's JA4 equals the client's. When
// cipher suites were dropped (tedious and tsql offer TLS_DHE_*, CCM and
// ARIA suites, which utls cannot complete), JA4 differs exactly there: the
// same version, SNI, extension count, ALPN and extension hash, and a
// cipher count smaller by the number dropped.
func checkMirrorJA4(t *testing.T, client, upstream string, dropped []string) {
	t.Helper()
	suites, sni := 0, false
	for _, d := range dropped {
		switch {
		case strings.HasPrefix(d, "cipher_suite "):
			suites++
		case strings.HasPrefix(d, "extension server_name "):
			sni = true // JA4 has it as d/i and in the extension count, not in the hash
		case strings.HasPrefix(d, "supported_group "):
		default:
			t.Errorf("dropped from the mirror: %q", d)
		}
	}
	if suites == 0 && !sni {
		if client == "" || client != upstream {
			t.Errorf("JA4 client %s upstream %s, nothing dropped", client, upstream)
		}
		return
	}
	c, u := strings.Split(client, "_"), strings.Split(upstream, "_")
	if len(c) != 3 || len(u) != 3 || len(c[0]) != 10 || len(u[0]) != 10 {
		t.Fatalf("JA4 client %s upstream %s", client, upstream)
	}
	var cn, un, ce, ue int
	fmt.Sscanf(c[0][4:6], "%d", &cn)
	fmt.Sscanf(u[0][4:6], "%d", &un)
	fmt.Sscanf(c[0][6:8], "%d", &ce)
	fmt.Sscanf(u[0][6:8], "%d", &ue)
	wantSNI, wantExt := c[0][3:4], ce
	if sni {
		wantSNI, wantExt = "i", ce-1
	}
	if c[0][:3] != u[0][:3] || u[0][3:4] != wantSNI || ue != wantExt || c[0][8:] != u[0][8:] || c[2] != u[2] || cn-un != suites {
		t.Errorf("JA4 client %s upstream %s: want equal but for %d cipher suites dropped (server_name dropped: %v)", client, upstream, suites, sni)
	}
}

// Microsoft's drivers through a bridge that shows a given certificate
// (pinned by the strict modes, which verify whatever they are told):
// JDBC (false, true, strict) and ODBC Driver 18 (no, yes, strict).
func TestMSDriversThroughBridge(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	dir := t.TempDir()
	_, certPEM, keyPEM, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{CommonName: "localhost",
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, upCA := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "up.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, upCA: emu.CertificatePEM()} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sink, recs := proxykit.Records(64)
	p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: emu.Addr(),
		Bridge: &proxy.BridgeConfig{Cert: certFile, Key: keyFile, UpstreamCA: upCA}}, proxy.Options{Sink: sink})
	port := proxykit.Port(p)
	for _, cm := range []clientMode{jdbcMode("false"), jdbcMode("true"), jdbcMode("strict"), odbcMode("no"), odbcMode("yes"), odbcMode("strict")} {
		t.Run(cm.client+"/"+cm.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", certPEM)
			if err != nil || !res.OK {
				t.Fatalf("SELECT 1: %v: error %q cause %q", err, res.Error, res.Cause)
			}
			r := nextRecord(t, recs)
			b := r.Bridge
			if b == nil || r.Login == nil || r.Login.User != emuUser || r.Login.Outcome != proxy.LoginOK || b.LoginAckVersion == "" {
				t.Fatalf("login %+v bridge %+v", r.Login, b)
			}
			checkMirrorJA4(t, b.ClientJA4, b.UpstreamJA4, b.DroppedFromMirror)
			t.Logf("%s %s: client %s/%s JA4 %s / %s, %d dropped", cm.client, cm.mode, b.ClientTLS.Version, b.ClientTLS.CipherSuite,
				b.ClientJA4, b.UpstreamJA4, len(b.DroppedFromMirror))
		})
	}
}

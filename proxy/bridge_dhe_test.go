package proxy_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// startDHEBridge runs an emulator with the given DHE mode and a bridge
// proxy in front of it; it returns the proxy, its records, the emulator
// and the pool that trusts the bridge's certificates.
func startDHEBridge(t *testing.T, mode emulator.DHEMode) (*proxy.Proxy, <-chan *proxy.Record, *emulator.Server, *x509.CertPool) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: bridgeUser, Password: bridgePassword, DHE: mode})
	dir := t.TempDir()
	upCA := filepath.Join(dir, "upstream.pem")
	if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	sink, recs := proxykit.Records(4)
	p := proxykit.Start(t, proxy.Config{Upstream: emu.Addr(), Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}},
		proxy.Options{Sink: sink})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.BridgeCAPEM()) {
		t.Fatal("bridge CA does not parse")
	}
	return p, recs, emu, pool
}

// dheOnlySession connects to p with the DHE engine as a client that
// offers only suite, in strict form (TDS 8.0, ALPN tds/8.0) or TDS 7.x
// ("session": ENCRYPT_ON, TLS inside PRELOGIN packets), and runs PRELOGIN
// (strict), LOGIN7 and SELECT 1. It returns the handshake's error, if any.
func dheOnlySession(t *testing.T, p *proxy.Proxy, pool *x509.CertPool, form string, suite uint16) error {
	t.Helper()
	raw, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	cfg := &dhe.Config{RootCAs: pool, ServerName: "localhost", CipherSuites: []uint16{suite}}
	exchange := func(rw io.ReadWriter, typ tds.PacketType, payload []byte) []byte {
		t.Helper()
		if err := (&tds.Writer{W: rw}).WriteMessage(typ, payload); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		m, err := tds.NewReader(rw).ReadMessage()
		if err != nil {
			t.Fatalf("answer to %s: %v", typ, err)
		}
		return m.Payload
	}
	pre := &tds.Prelogin{}
	pre.Set(tds.PreloginVersion, []byte{1, 0, 0, 0, 0, 0})
	var dc *dhe.Conn
	if form == "strict" {
		cfg.NextProtos = []string{"tds/8.0"}
		dc = dhe.Client(raw, cfg)
		if err := dc.Handshake(); err != nil {
			return err
		}
		pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptStrict)})
		if _, err := tds.ParsePrelogin(exchange(dc, tds.PacketPrelogin, pre.Marshal())); err != nil {
			t.Fatalf("PRELOGIN answer: %v", err)
		}
	} else {
		pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptOn)})
		if _, err := tds.ParsePrelogin(exchange(raw, tds.PacketPrelogin, pre.Marshal())); err != nil {
			t.Fatalf("PRELOGIN answer: %v", err)
		}
		fc := tlsbridge.NewFramedConn(raw, tlsbridge.RoleClient, tds.DefaultPacketSize)
		dc = dhe.Client(fc, cfg)
		if err := dc.Handshake(); err != nil {
			return err
		}
		if err := fc.SwitchToRaw(); err != nil {
			t.Fatal(err)
		}
	}
	defer dc.Close()
	if st := dc.ConnectionState(); st.CipherSuite != suite || (form == "strict") != (st.NegotiatedProtocol == "tds/8.0") {
		t.Fatalf("client leg: suite 0x%04X ALPN %q", st.CipherSuite, st.NegotiatedProtocol)
	}
	l := &tds.Login7{TDSVersion: tds.VersionTDS74, PacketSize: 4096, UserName: bridgeUser,
		Password: tds.NewPassword(bridgePassword), AppName: "bridge_dhe_test", HostName: "test"}
	if resp, err := tds.ParseLoginResponse(exchange(dc, tds.PacketLogin7, l.Marshal())); err != nil || resp.Ack == nil {
		t.Fatalf("login response %+v: %v", resp, err)
	}
	res, err := tds.ParseResult(exchange(dc, tds.PacketSQLBatch, tds.AppendSQLBatch(nil, "SELECT 1", 0)))
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("SELECT 1: %+v %v", res, err)
	}
	return nil
}

// A client that offers only TLS_DHE_RSA suites is bridged with the DHE
// engine on both legs (docs/bridge.md): the engine's own client, in strict
// form and in TDS 7.x, through a bridge proxy to an emulator that speaks
// only DHE; LOGIN7 and SELECT 1 go through, and the record shows the DHE
// suite on both legs.
func TestBridgeProxyDHEOnlyClient(t *testing.T) {
	p, recs, emu, pool := startDHEBridge(t, emulator.DHEOnly)
	const suite = 0x009E // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
	want := "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
	for i, form := range []string{"strict", "session"} {
		t.Run(form, func(t *testing.T) {
			if err := dheOnlySession(t, p, pool, form, suite); err != nil {
				t.Fatalf("DHE handshake through the bridge: %v", err)
			}
			rec := proxykit.Next(t, recs, 20*time.Second)
			b := rec.Bridge
			if b == nil || b.ClientTLS == nil || b.UpstreamTLS == nil {
				t.Fatalf("bridge section %+v", b)
			}
			t.Logf("client leg %+v, upstream leg %+v", *b.ClientTLS, *b.UpstreamTLS)
			alpn := map[string]string{"strict": "tds/8.0", "session": ""}[form]
			if b.ClientTLS.CipherSuite != want || b.UpstreamTLS.CipherSuite != want || b.UpstreamTLS.ALPN != alpn {
				t.Errorf("legs: client %+v upstream %+v, want %s on both", b.ClientTLS, b.UpstreamTLS, want)
			}
			if b.UpstreamJA4 == "" || len(b.DroppedFromMirror) != 0 {
				t.Errorf("upstream JA4 %q dropped %q", b.UpstreamJA4, b.DroppedFromMirror)
			}
			if rec.TLS == nil || rec.TLS.KeyExchange == nil || rec.TLS.KeyExchange.Kind != "DHE" {
				t.Errorf("TLS %+v", rec.TLS)
			}
			if rec.Login == nil || rec.Login.Outcome != proxy.LoginOK || b.SQLBatches != 1 {
				t.Errorf("login %+v batches %d", rec.Login, b.SQLBatches)
			}
			if js, _ := json.Marshal(rec); strings.Contains(string(js), bridgePassword) {
				t.Fatal("the password is in the record")
			}
			if st := emu.Stats(); st.DHEHandshakes != uint64(i+1) {
				t.Errorf("emulator DHE handshakes %d, want %d", st.DHEHandshakes, i+1)
			}
		})
	}
}

// A DHE-only client in front of a server without DHE: the server refuses
// the engine's hello, the bridge resets the client, and the record says
// the upstream decided.
func TestBridgeProxyDHEOnlyClientServerWithoutDHE(t *testing.T) {
	p, recs, _, pool := startDHEBridge(t, emulator.DHEOff)
	err := dheOnlySession(t, p, pool, "strict", 0x009E)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("handshake against a server without DHE: %v, want a TCP reset", err)
	}
	rec := proxykit.Next(t, recs, 20*time.Second)
	if rec.Bridge == nil || rec.Bridge.UpstreamTLS != nil || !strings.Contains(rec.Bridge.DecidedBy, "upstream") {
		t.Fatalf("bridge section %+v", rec.Bridge)
	}
}

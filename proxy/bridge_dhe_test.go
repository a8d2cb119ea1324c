package proxy_test

import (
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// A client that offers only TLS_DHE_RSA suites is bridged with the DHE
// engine on both legs (docs/bridge.md): the engine's own client in strict
// form (TDS 8.0, ALPN tds/8.0) through a bridge proxy to an emulator that
// speaks only DHE; PRELOGIN, LOGIN7 and SELECT 1 go through, and the
// record shows the DHE suite on both legs.
func TestBridgeProxyDHEOnlyClient(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: bridgeUser, Password: bridgePassword,
		DHE: emulator.DHEOnly})
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

	const suite = 0x009E // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
	raw, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	dc := dhe.Client(raw, &dhe.Config{RootCAs: pool, ServerName: "localhost", CipherSuites: []uint16{suite},
		NextProtos: []string{"tds/8.0"}})
	if err := dc.Handshake(); err != nil {
		t.Fatalf("DHE handshake through the bridge: %v", err)
	}
	if st := dc.ConnectionState(); st.CipherSuite != suite || st.NegotiatedProtocol != "tds/8.0" {
		t.Fatalf("client leg: suite 0x%04X ALPN %q", st.CipherSuite, st.NegotiatedProtocol)
	}
	w, r := tds.Writer{W: dc}, tds.NewReader(dc)
	exchange := func(typ tds.PacketType, payload []byte) []byte {
		t.Helper()
		if err := w.WriteMessage(typ, payload); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("answer to %s: %v", typ, err)
		}
		return m.Payload
	}
	pre := &tds.Prelogin{}
	pre.Set(tds.PreloginVersion, []byte{1, 0, 0, 0, 0, 0})
	pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptStrict)})
	if _, err := tds.ParsePrelogin(exchange(tds.PacketPrelogin, pre.Marshal())); err != nil {
		t.Fatalf("PRELOGIN answer: %v", err)
	}
	l := &tds.Login7{TDSVersion: tds.VersionTDS74, PacketSize: 4096, UserName: bridgeUser,
		Password: tds.NewPassword(bridgePassword), AppName: "bridge_dhe_test", HostName: "test"}
	if resp, err := tds.ParseLoginResponse(exchange(tds.PacketLogin7, l.Marshal())); err != nil || resp.Ack == nil {
		t.Fatalf("login response %+v: %v", resp, err)
	}
	res, err := tds.ParseResult(exchange(tds.PacketSQLBatch, tds.AppendSQLBatch(nil, "SELECT 1", 0)))
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("SELECT 1: %+v %v", res, err)
	}
	dc.Close()

	rec := proxykit.Next(t, recs, 20*time.Second)
	b := rec.Bridge
	if b == nil || b.ClientTLS == nil || b.UpstreamTLS == nil {
		t.Fatalf("bridge section %+v", b)
	}
	want := "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
	if b.ClientTLS.CipherSuite != want || b.UpstreamTLS.CipherSuite != want || b.UpstreamTLS.ALPN != "tds/8.0" {
		t.Errorf("legs: client %+v upstream %+v, want %s on both", b.ClientTLS, b.UpstreamTLS, want)
	}
	t.Logf("client leg %+v, upstream leg %+v", *b.ClientTLS, *b.UpstreamTLS)
	if rec.TLS == nil || rec.TLS.KeyExchange == nil || rec.TLS.KeyExchange.Kind != "DHE" {
		t.Errorf("TLS %+v", rec.TLS)
	}
	if rec.Login == nil || rec.Login.Outcome != proxy.LoginOK || b.SQLBatches != 1 {
		t.Errorf("login %+v batches %d", rec.Login, b.SQLBatches)
	}
	if js, _ := json.Marshal(rec); strings.Contains(string(js), bridgePassword) {
		t.Fatal("the password is in the record")
	}
	if st := emu.Stats(); st.DHEHandshakes != 1 {
		t.Errorf("emulator DHE handshakes %d, want 1", st.DHEHandshakes)
	}
}

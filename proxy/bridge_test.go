package proxy_test

import (
	"context"
	"crypto/tls"
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
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

const (
	bridgeUser     = "tdsproxy"
	bridgePassword = "Br1dge-Pa55word!"
)

// startBridgeProxy runs the emulator and a bridge proxy in front of it;
// edit changes the bridge options.
func startBridgeProxy(t *testing.T, edit func(*proxy.BridgeConfig)) (*proxy.Proxy, <-chan *proxy.Record, string) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: bridgeUser, Password: bridgePassword})
	dir := t.TempDir()
	upCA := filepath.Join(dir, "upstream.pem")
	if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	bc := &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA, Keylog: filepath.Join(dir, "keys.log")}
	if edit != nil {
		edit(bc)
	}
	sink, recs := proxykit.Records(16)
	p := proxykit.Start(t, proxy.Config{Upstream: emu.Addr(), Bridge: bc}, proxy.Options{Sink: sink})
	return p, recs, dir
}

func runThrough(t *testing.T, p *proxy.Proxy, encrypt, password, query string) *interop.Result {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.BridgeCAPEM())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := interop.RunMSSQL(ctx, interop.MSSQLConfig{Port: proxykit.Port(p), User: bridgeUser, Password: password,
		Encrypt: encrypt, Query: query, Timeout: 20 * time.Second, TLS: func(c *tls.Config) { c.RootCAs = pool }})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestBridgeProxyRecord(t *testing.T) {
	p, recs, dir := startBridgeProxy(t, func(b *proxy.BridgeConfig) { b.RecordQueries = "fingerprint" })
	for _, enc := range []string{"true", "strict", "false", "disable"} {
		t.Run("encrypt="+enc, func(t *testing.T) {
			res := runThrough(t, p, enc, bridgePassword, "SELECT 1")
			if !res.OK {
				t.Fatalf("SELECT 1: %q", res.Error)
			}
			r := proxykit.Next(t, recs, 20*time.Second)
			b := r.Bridge
			if b == nil {
				t.Fatalf("no bridge section: %+v", r)
			}
			if !b.Keylog || b.UpstreamInsecure || b.UpstreamHello != "mirror" || b.RecordQueries != "fingerprint" {
				t.Errorf("bridge %+v", b)
			}
			if enc != "disable" && (b.ClientJA4 == "" || b.ClientJA4 != b.UpstreamJA4) {
				t.Errorf("JA4 client %q upstream %q", b.ClientJA4, b.UpstreamJA4)
			}
			if r.Login == nil || !r.Login.Visible || r.Login.User != bridgeUser || r.Login.Outcome != proxy.LoginOK ||
				r.Login.ServerVersion == "" || b.LoginAckVersion != r.Login.ServerVersion {
				t.Errorf("login %+v, loginack %q", r.Login, b.LoginAckVersion)
			}
			if b.SQLBatches != 1 || len(b.Queries) != 1 || b.Queries[0] != tds.QueryFingerprint("select 1") {
				t.Errorf("batches %d queries %q", b.SQLBatches, b.Queries)
			}
			if r.Close == nil || r.Close.By != proxy.SideClient || !r.Reached(proxy.PhaseEstablished) {
				t.Errorf("close %+v phases %v", r.Close, r.Phases)
			}
			if r.BytesClientToServer == 0 || r.BytesServerToClient == 0 {
				t.Errorf("bytes %d/%d", r.BytesClientToServer, r.BytesServerToClient)
			}
			js, _ := json.Marshal(r)
			if strings.Contains(string(js), bridgePassword) || !strings.Contains(string(js), `"keylog":true`) {
				t.Fatalf("record JSON: password present or keylog missing: %s", js)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		res := runThrough(t, p, "true", "not-"+bridgePassword, "SELECT 1")
		if res.OK {
			t.Fatal("logged in with a wrong password")
		}
		r := proxykit.Next(t, recs, 20*time.Second)
		if r.Login == nil || r.Login.Outcome != proxy.LoginFailed || r.Login.ErrorNumber != 18456 ||
			len(r.Bridge.Errors) != 1 || r.Bridge.Errors[0].Message != "Login failed for user '"+bridgeUser+"'." {
			t.Fatalf("login %+v errors %+v", r.Login, r.Bridge.Errors)
		}
	})
	t.Run("unknown procedure", func(t *testing.T) {
		res := runThrough(t, p, "true", bridgePassword, "EXEC tdsproxy_nope")
		if res.OK {
			t.Fatal("EXEC tdsproxy_nope succeeded")
		}
		r := proxykit.Next(t, recs, 20*time.Second)
		if r.Login.Outcome != proxy.LoginOK || len(r.Bridge.Errors) != 1 || r.Bridge.Errors[0].Number != 2812 {
			t.Fatalf("login %+v errors %+v", r.Login, r.Bridge.Errors)
		}
	})
	keys, err := os.ReadFile(filepath.Join(dir, "keys.log"))
	if err != nil || !strings.Contains(string(keys), "CLIENT_RANDOM") || strings.Contains(string(keys), bridgePassword) {
		t.Fatalf("key log: %v %.100q", err, keys)
	}
}

// SSPI in LOGIN7 through a bridge gets the Extended Protection note.
func TestBridgeProxySSPINote(t *testing.T) {
	p, recs, _ := startBridgeProxy(t, nil)
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := tds.Writer{}
	pl := &tds.Prelogin{}
	pl.Set(tds.PreloginVersion, []byte{9, 0, 0, 0, 0, 0})
	pl.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptNotSup)})
	c.Write(w.AppendMessage(nil, tds.PacketPrelogin, 0, pl.Marshal()))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := tds.NewReader(c).ReadMessage(); err != nil {
		t.Fatal(err)
	}
	login := (&tds.Login7{TDSVersion: tds.VersionTDS74, HostName: "h", AppName: "sspi-app", SSPI: []byte("NTLMSSP\x00\x01\x00\x00\x00")}).Marshal()
	c.Write(w.AppendMessage(nil, tds.PacketLogin7, 0, login))
	tds.NewReader(c).ReadMessage()
	c.Close()
	r := proxykit.Next(t, recs, 20*time.Second)
	found := false
	for _, n := range r.Notes {
		found = found || strings.Contains(n, "Extended Protection")
	}
	if !found || r.Login == nil || r.Login.App != "sspi-app" {
		t.Fatalf("notes %q login %+v", r.Notes, r.Login)
	}
}

func TestBridgeConfigValidate(t *testing.T) {
	for _, bad := range []proxy.BridgeConfig{
		{Cert: "c"}, {CA: "c"}, {Cert: "c", Key: "k", CA: "a", CAKey: "b"}, {UpstreamCA: "x", UpstreamInsecure: true},
		{UpstreamHello: "chrome"}, {RecordQueries: "all"},
	} {
		if _, err := proxy.New(proxy.Config{Name: "b", Listen: "127.0.0.1:0", Upstream: "127.0.0.1:1", Bridge: &bad}, proxy.Options{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Hostile input against a bridge proxy: closed with a reason in the
// record, the proxy keeps serving.
func TestBridgeProxyHostile(t *testing.T) {
	p, recs, _ := startBridgeProxy(t, nil)
	for _, in := range [][]byte{[]byte("GET / HTTP/1.0\r\n\r\n"), {0x16, 3, 3, 0xFF, 0xFF, 0}} {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(in)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
		r := proxykit.Next(t, recs, 20*time.Second)
		if r.Close == nil || r.Close.Reason == "" || r.Bridge == nil || r.Bridge.Failure == "" {
			t.Fatalf("close %+v bridge %+v", r.Close, r.Bridge)
		}
	}
	if res := runThrough(t, p, "true", bridgePassword, "SELECT 1"); !res.OK {
		t.Fatalf("after hostile input: %q", res.Error)
	}
}

// Bridge connections obey negotiation_timeout and max_connections.
func TestBridgeProxyLimits(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff})
	sink, recs := proxykit.Records(16)
	p := proxykit.Start(t, proxy.Config{Upstream: emu.Addr(), MaxConnections: 1, NegotiationTimeout: 300 * time.Millisecond,
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(t.TempDir(), "ca.pem"), UpstreamInsecure: true}}, proxy.Options{Sink: sink})
	stalled, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.Write([]byte{0x12, 0x01}) // half a PRELOGIN header, then nothing
	testkit.WaitFor(t, func() bool { return p.ActiveCount() == 1 }, 5*time.Second, "the stalled connection counted")
	// The limit's RST can reach the socket before Dial has finished its
	// non-blocking connect: Dial then reports the reset itself.
	second, err := net.Dial("tcp", p.Addr().String())
	switch {
	case errors.Is(err, syscall.ECONNRESET):
	case err != nil:
		t.Fatal(err)
	default:
		second.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, second)
		second.Close()
	}
	var limit, timeout bool
	for range 2 {
		r := proxykit.Next(t, recs, 20*time.Second)
		switch {
		case r.Close != nil && r.Close.Kind == proxy.CloseLimit:
			limit = true
		case r.Close != nil && r.Close.Kind == proxy.CloseTimeout && strings.Contains(r.Close.Reason, "negotiation_timeout"):
			timeout = true
		default:
			t.Errorf("record close %+v", r.Close)
		}
	}
	if !limit || !timeout {
		t.Fatalf("limit %v timeout %v", limit, timeout)
	}
}

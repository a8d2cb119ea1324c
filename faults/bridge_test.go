package faults_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/interop"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// With a bridge, the TLS scenarios configure the client-facing TLS server
// and its handshake decides; the close style is the rule's (rst or
// alert), and the client sees its own library's error for it.
func TestScenariosInBridgeMode(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: "u", Password: "Pa55-word!"})
	dir := t.TempDir()
	upCA := filepath.Join(dir, "up.pem")
	os.WriteFile(upCA, emu.CertificatePEM(), 0o600)
	old := func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }
	cases := []struct {
		scenario string
		options  map[string]string
		client   func(*tls.Config)
		rst, alt string // the client's error with close rst / alert
		decided  string
	}{
		{faults.ScenarioProtocolMismatch, map[string]string{"server_tls": "1.2"}, old,
			"connection reset by peer", "protocol version not supported", "client-leg TLS (crypto/tls)"},
		{faults.ScenarioCipherMismatch, map[string]string{"server_ciphers": "TLS_RSA_WITH_AES_128_CBC_SHA"}, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
			"connection reset by peer", "handshake failure", "client-leg TLS (crypto/tls)"},
		{faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "md5"}, nil,
			"connection reset by peer", "handshake failure", "bridge (Schannel's certificate rule)"},
	}
	for _, tc := range cases {
		for _, style := range []string{"rst", "alert:handshake_failure"} {
			t.Run(tc.scenario+"/"+style, func(t *testing.T) {
				e := faults.NewEngine(nil)
				if err := e.SetRules("p", []faults.RuleSpec{{Name: "s", Scenario: tc.scenario, Options: tc.options, Close: style}}); err != nil {
					t.Fatal(err)
				}
				sink, recs := proxykit.Records(8)
				p := proxykit.Start(t, proxy.Config{Name: "p", Upstream: emu.Addr(),
					Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(t.TempDir(), "ca.pem"), UpstreamCA: upCA}},
					proxy.Options{Decider: e.Decider("p"), Sink: sink})
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(p.BridgeCAPEM())
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := interop.RunMSSQL(ctx, interop.MSSQLConfig{Port: proxykit.Port(p), User: "u", Password: "Pa55-word!",
					Encrypt: "true", Timeout: 20 * time.Second, TLS: func(c *tls.Config) {
						c.RootCAs = pool
						if tc.client != nil {
							tc.client(c)
						}
					}})
				if err != nil {
					t.Fatal(err)
				}
				want := tc.rst
				if style != "rst" {
					want = tc.alt
				}
				if res.OK || !strings.Contains(res.Error, want) {
					t.Fatalf("ok %v error %q, want %q", res.OK, res.Error, want)
				}
				r := proxykit.Next(t, recs, 20*time.Second)
				if r.Bridge == nil || r.Bridge.Scenario != tc.scenario || r.Bridge.DecidedBy != tc.decided {
					t.Fatalf("bridge %+v", r.Bridge)
				}
				wantKind := proxy.CloseRST
				if style != "rst" {
					wantKind = proxy.CloseAlert
				}
				if r.Close == nil || r.Close.By != proxy.SideProxy || r.Close.Kind != wantKind {
					t.Errorf("close %+v, want by proxy, %s", r.Close, wantKind)
				}
			})
		}
	}
}

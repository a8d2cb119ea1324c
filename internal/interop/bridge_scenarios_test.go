package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
)

// newBridgeRig is newEmuRig with the proxy in bridge mode (docs/bridge.md).
func newBridgeRig(t *testing.T, cfg emulator.Config, rules ...faults.RuleSpec) *rig {
	t.Helper()
	emu, _ := startEmulatorConfig(t, cfg)
	dir := t.TempDir()
	upCA := filepath.Join(dir, "up.pem")
	if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rig{emu: emu, engine: faults.NewEngine(nil), records: make(chan *proxy.Record, 64)}
	if err := r.engine.SetRules(rigName, rules); err != nil {
		t.Fatalf("SetRules: %v", err)
	}
	r.proxy = proxykit.Start(t, proxy.Config{Name: rigName, Upstream: emu.Addr(), DialTimeout: 5 * time.Second,
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}},
		proxy.Options{Decider: r.engine.Decider(rigName), Sink: func(rec *proxy.Record) {
			select {
			case r.records <- rec:
			default:
			}
		}})
	r.port = proxykit.Port(r.proxy)
	return r
}

func startEmulatorConfig(t *testing.T, cfg emulator.Config) (*emulator.Server, string) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.User, cfg.Password = emuUser, emuPassword
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := emu.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu, emu.Addr()
}

// The TLS scenarios in bridge mode against tedious and FreeTDS: the
// bridge's own TLS server refuses the client, which reports it in its own
// words, for both close styles: rst (the same reset as in passthrough)
// and alert (the TLS stack's own alert).
func TestScenariosThroughBridgeRealClients(t *testing.T) {
	type tc struct {
		scenario string
		opts     map[string]string
		client   string
		run      clientRun
		alert    []string // what the client's error says with close alert
	}
	cases := []tc{
		{faults.ScenarioProtocolMismatch, map[string]string{"server_tls": "1.2"}, ClientTedious, tediousRun(tediousOld),
			[]string{"alert protocol version"}},
		{faults.ScenarioProtocolMismatch, map[string]string{"server_tls": "1.2"}, ClientTSQL, tsqlRun(tsqlOld),
			[]string{"A TLS fatal alert has been received"}},
		{faults.ScenarioCipherMismatch, map[string]string{"server_ciphers": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}, ClientTedious,
			tediousRun(TediousConfig{Encrypt: true, CryptoCredentialsDetails: &CryptoCredentials{MaxVersion: "TLSv1.2", Ciphers: "AES128-GCM-SHA256"}}),
			[]string{"alert handshake failure"}},
		{faults.ScenarioCipherMismatch, map[string]string{"server_ciphers": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}, ClientTSQL,
			tsqlRun(TSQLConfig{Encryption: "require", Dump: true, GnuTLSOverrides: []string{
				"disabled-version = tls1.3", "tls-disabled-kx = ECDHE-RSA", "tls-disabled-kx = ECDHE-ECDSA", "tls-disabled-kx = DHE-RSA"}}),
			[]string{"A TLS fatal alert has been received"}},
		{faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "md5"}, ClientTedious, tediousRun(TediousConfig{Encrypt: true}),
			[]string{"alert handshake failure"}},
		{faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "md5"}, ClientTSQL, tsqlRun(TSQLConfig{Encryption: "require", Dump: true}),
			[]string{"A TLS fatal alert has been received"}},
	}
	for _, c := range cases {
		for _, style := range []string{"rst", "alert:handshake_failure"} {
			t.Run(c.scenario+"/"+c.client+"/"+style, func(t *testing.T) {
				rule := scenarioRule(c.scenario, c.opts)
				rule.Close = style
				r := newBridgeRig(t, emuConfig(), rule)
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				defer cancel()
				res, err := c.run(ctx, t, r)
				if style == "rst" {
					if c.client == ClientTedious {
						tediousReset(t, r, res, err)
					} else {
						tsqlReset(t, r, res, err)
					}
				} else {
					all := res.Error + "\n" + res.Cause + "\n" + res.Dump
					for _, w := range c.alert {
						if !strings.Contains(all, w) {
							t.Errorf("the client's error lacks %q: error %q cause %q\ndump: %s", w, res.Error, res.Cause, lastLines(res.Dump, 10))
						}
					}
				}
				rec := r.next(t)
				if rec.Bridge == nil || rec.Bridge.Scenario != c.scenario || rec.Close == nil || rec.Close.By != proxy.SideProxy {
					t.Errorf("record bridge %+v close %+v", rec.Bridge, rec.Close)
				}
				t.Logf("%s: error %q cause %q; decided by %s", c.client, res.Error, res.Cause, rec.Bridge.DecidedBy)
			})
		}
	}
}

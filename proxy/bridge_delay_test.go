package proxy_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/diagnose"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// A decider's delay at the login response (delayed-accept's login_delay)
// holds the decrypted login response in bridge mode as it holds the
// plaintext one in passthrough: the client's login takes the delay, the
// record names the decision at login.response, and that step is exact.
// A delay at the PRELOGIN response (prelogin_delay) holds the upstream's
// plaintext PRELOGIN answer the same way.
func TestBridgeLoginResponseDelay(t *testing.T) {
	const delay = 600 * time.Millisecond
	for _, tc := range []struct {
		name  string
		enc   tds.Encryption
		phase proxy.Phase
		step  string
	}{
		{"login-only", tds.EncryptOff, proxy.PhaseLoginResponse, "login.response"},
		{"session", tds.EncryptOn, proxy.PhaseLoginResponse, "login.response"},
		{"prelogin/login-only", tds.EncryptOff, proxy.PhasePreloginResponse, "prelogin.response"},
		{"prelogin/session", tds.EncryptOn, proxy.PhasePreloginResponse, "prelogin.response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tc.enc, User: bridgeUser, Password: bridgePassword})
			dir := t.TempDir()
			upCA := filepath.Join(dir, "upstream.pem")
			if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			sink, recs := proxykit.Records(4)
			p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: emu.Addr(),
				Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}},
				proxy.Options{Sink: sink, Decider: holdAt{phase: tc.phase, d: delay}})

			start := time.Now()
			res := runThrough(t, p, "true", bridgePassword, "SELECT 1")
			took := time.Since(start)
			if !res.OK {
				t.Fatalf("SELECT 1: %q", res.Error)
			}
			if took < delay {
				t.Errorf("login and query took %v, want at least the %v hold", took, delay)
			}
			r := proxykit.Next(t, recs, 20*time.Second)
			var held bool
			for _, f := range r.Faults {
				if f.Phase == tc.phase && f.Rule == "slow-login" {
					held = true
				}
			}
			if !held {
				t.Errorf("no decision at %s in the record: %+v", tc.phase, r.Faults)
			}
			found := false
			for _, s := range diagnose.Steps(r) {
				if s.Step == tc.step {
					found = true
					// Held: the record says the proxy held it, not the
					// server (as passthrough's record does).
					if s.Duration < delay || s.Inferred || s.Held != delay {
						t.Errorf("%s step %+v, want exact, at least %v, %v of it held", tc.step, s, delay, delay)
					}
				}
			}
			if !found {
				t.Errorf("no %s step: %+v", tc.step, diagnose.Steps(r))
			}
		})
	}
}

package proxy_test

import (
	"net"
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

// A client that gives up while a bridge holds the upstream's PRELOGIN
// answer is recorded when it left, as in passthrough (holdClient), not
// when the hold would have ended.
func TestBridgeClientLeavingDuringPreloginHold(t *testing.T) {
	const hold = 6 * time.Second
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, User: bridgeUser, Password: bridgePassword})
	dir := t.TempDir()
	sink, recs := proxykit.Records(4)
	p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: emu.Addr(),
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamInsecure: true}},
		proxy.Options{Sink: sink, Decider: holdAt{phase: proxy.PhasePreloginResponse, d: hold}})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pl := &tds.Prelogin{}
	pl.Set(tds.PreloginVersion, []byte{9, 0, 0, 0, 0, 0})
	pl.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptOn)})
	w := tds.Writer{}
	if _, err := c.Write(w.AppendMessage(nil, tds.PacketPrelogin, 0, pl.Marshal())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the client's patience
	left := time.Now()
	c.Close()
	r := proxykit.Next(t, recs, 10*time.Second)
	if took := time.Since(left); took > 2*time.Second {
		t.Errorf("the record came %v after the client left (hold %v)", took, hold)
	}
	if d := r.End.Sub(r.Start); d > hold/2 {
		t.Errorf("duration %v, want about when the client left (hold %v)", d, hold)
	}
	if r.Close == nil || r.Close.By != proxy.SideClient || r.Close.Phase != proxy.PhasePreloginRequest ||
		r.Close.Awaiting != proxy.SideServer || r.Close.Silence < 400*time.Millisecond || r.Close.Silence > hold/2 {
		t.Errorf("close %+v, want by the client at prelogin.request, awaiting the server for about 500ms", r.Close)
	}
}

// closeAt closes the connection (RST) at phase.
type closeAt proxy.Phase

func (c closeAt) Connect(proxy.ConnInfo) proxy.ConnDecider { return c }

func (c closeAt) Decide(ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	if ev.Phase == proxy.Phase(c) {
		return proxy.Verdict{Close: true, Style: proxy.StyleRST, Rule: "cut", Action: "close:rst"}
	}
	return proxy.Verdict{}
}

// A close a decider orders during a bridged session names the phase it
// acted at, as in passthrough, although the bridge adds its phase marks
// only when the connection ends.
func TestBridgeInjectedClosePhase(t *testing.T) {
	for _, phase := range []proxy.Phase{proxy.PhasePreloginResponse, proxy.PhaseLogin7, proxy.PhaseLoginResponse} {
		t.Run(string(phase), func(t *testing.T) {
			emu := testkit.StartEmulator(t, emulator.Config{Encrypt: tds.EncryptOn, User: bridgeUser, Password: bridgePassword})
			dir := t.TempDir()
			sink, recs := proxykit.Records(4)
			p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: emu.Addr(),
				Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamInsecure: true}},
				proxy.Options{Sink: sink, Decider: closeAt(phase)})
			if res := runThrough(t, p, "true", bridgePassword, "SELECT 1"); res.OK {
				t.Fatal("SELECT 1 passed a close at " + string(phase))
			}
			r := proxykit.Next(t, recs, 20*time.Second)
			if r.Close == nil || r.Close.By != proxy.SideProxy || r.Close.Phase != phase {
				t.Errorf("close %+v, want by the proxy at %s", r.Close, phase)
			}
		})
	}
}

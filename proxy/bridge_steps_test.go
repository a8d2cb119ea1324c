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

// holdAt holds the bytes that complete one phase on every connection.
type holdAt struct {
	phase proxy.Phase
	d     time.Duration
}

func (h holdAt) Connect(proxy.ConnInfo) proxy.ConnDecider { return h }

func (h holdAt) Decide(ev *proxy.Event, _ *proxy.Record) proxy.Verdict {
	if ev.Phase == h.phase {
		return proxy.Verdict{Delay: h.d, Rule: "slow-login"}
	}
	return proxy.Verdict{}
}

// A go-mssqldb encrypt=true login through a bridge to a slow server (a
// passthrough proxy holding the login response in front of the emulator):
// the bridge's record has exact steps, login.response about the delay and
// not inferred; the passthrough proxy's record of the same login, which saw
// LOGIN7 only encrypted, still marks it inferred (docs/report.md). The
// server's ENCRYPT_OFF gives a login-only session, ENCRYPT_ON a whole
// encrypted one (MS-TDS §2.2.6.5).
func TestBridgeStepsExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  tds.Encryption
	}{{"login-only", tds.EncryptOff}, {"session", tds.EncryptOn}} {
		t.Run(tc.name, func(t *testing.T) { bridgeStepsExact(t, tc.enc) })
	}
}

func bridgeStepsExact(t *testing.T, enc tds.Encryption) {
	const delay = 700 * time.Millisecond
	emu := testkit.StartEmulator(t, emulator.Config{Encrypt: enc, User: bridgeUser, Password: bridgePassword})
	slowSink, slowRecs := proxykit.Records(4)
	slow := proxykit.Start(t, proxy.Config{Name: "slow", Upstream: emu.Addr()},
		proxy.Options{Sink: slowSink, Decider: holdAt{phase: proxy.PhaseLoginResponse, d: delay}})

	dir := t.TempDir()
	upCA := filepath.Join(dir, "upstream.pem")
	if err := os.WriteFile(upCA, emu.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	sink, recs := proxykit.Records(4)
	// The upstream certificate names the emulator's host, as the slow
	// proxy's address does (both loopback).
	p := proxykit.Start(t, proxy.Config{Name: "bridge", Upstream: slow.Addr().String(),
		Bridge: &proxy.BridgeConfig{CAOut: filepath.Join(dir, "ca.pem"), UpstreamCA: upCA}}, proxy.Options{Sink: sink})

	res := runThrough(t, p, "true", bridgePassword, "SELECT 1")
	if !res.OK {
		t.Fatalf("SELECT 1: %q", res.Error)
	}
	r := proxykit.Next(t, recs, 20*time.Second)
	steps := diagnose.Steps(r)
	t.Logf("bridge steps: %+v", steps)
	got := map[string]diagnose.Step{}
	for _, s := range steps {
		got[s.Step] = s
	}
	for _, name := range []string{"prelogin.request", "prelogin.response", "tls.client_hello", "tls.server_hello",
		"tls.client_finished", "tls.server_finished", "login7", "login.response"} {
		s, ok := got[name]
		if !ok {
			t.Errorf("bridge: no %s step", name)
			continue
		}
		if s.Inferred {
			t.Errorf("bridge: %s inferred, want exact", name)
		}
	}
	lr := got["login.response"]
	if lr.Duration < delay || lr.Duration > delay+2*time.Second {
		t.Errorf("bridge: login.response %v, want about %v", lr.Duration, delay)
	}
	var sum time.Duration
	distinct := map[time.Duration]bool{}
	for _, m := range r.Phases {
		if m.Phase == proxy.PhaseEstablished {
			continue
		}
		distinct[m.At] = true
	}
	for _, s := range steps {
		if s.Duration < 0 {
			t.Errorf("bridge: negative step %+v", s)
		}
		sum += s.Duration
	}
	if len(distinct) < 4 {
		t.Errorf("bridge: phase marks at %d distinct times, want them spread: %+v", len(distinct), r.Phases)
	}
	if total, complete := diagnose.LoginTime(steps); !complete || total != sum || total < delay {
		t.Errorf("bridge: login time %v complete %v", total, complete)
	}

	// The passthrough proxy saw the same login with LOGIN7 inside TLS.
	sr := proxykit.Next(t, slowRecs, 20*time.Second)
	ssteps := diagnose.Steps(sr)
	t.Logf("passthrough steps: %+v", ssteps)
	var sawLogin bool
	for _, s := range ssteps {
		if s.Step == "login7" {
			sawLogin = true
			if !s.Inferred {
				t.Errorf("passthrough: login7 inside TLS not inferred: %+v", s)
			}
		}
		if s.Step == "prelogin.request" && s.Inferred {
			t.Errorf("passthrough: plaintext PRELOGIN inferred: %+v", s)
		}
	}
	if !sawLogin {
		t.Errorf("passthrough: no login7 step: %+v", sr.Phases)
	}
}

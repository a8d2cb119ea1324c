package proxy

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/internal/testkit"
	"github.com/tdsproxy/tdsproxy/tds"
)

// phaseDecider injects one verdict at one phase on every connection.
type phaseDecider struct {
	phase Phase
	v     Verdict
}

func (d phaseDecider) Connect(ConnInfo) ConnDecider { return d }

func (d phaseDecider) Decide(ev *Event, _ *Record) Verdict {
	if ev.Phase == d.phase {
		return d.v
	}
	return Verdict{}
}

// A server that resets, closes or goes silent in a given phase: the proxy in
// front of it names the right side, kind and phase. The misbehaving "server"
// is a second proxy with an injected fault in front of the emulator.
func TestServerMisbehavesInPhase(t *testing.T) {
	cases := []struct {
		name     string
		encrypt  string
		phase    Phase
		style    CloseStyle
		silent   bool
		wantBy   Side
		wantKind CloseKind
		wantErr  string // in go-mssqldb's error
	}{
		{name: "rst at prelogin", encrypt: "disable", phase: PhasePreloginRequest, style: StyleRST, wantBy: SideServer, wantKind: CloseRST, wantErr: "connection reset by peer"},
		{name: "fin at prelogin", encrypt: "disable", phase: PhasePreloginRequest, style: StyleFIN, wantBy: SideServer, wantKind: CloseFIN, wantErr: "EOF"},
		{name: "rst at client hello", encrypt: "true", phase: PhaseTLSClientHello, style: StyleRST, wantBy: SideServer, wantKind: CloseRST, wantErr: "TLS Handshake failed"},
		{name: "fin at client hello", encrypt: "true", phase: PhaseTLSClientHello, style: StyleFIN, wantBy: SideServer, wantKind: CloseFIN, wantErr: "TLS Handshake failed"},
		{name: "rst at login7", encrypt: "disable", phase: PhaseLogin7, style: StyleRST, wantBy: SideServer, wantKind: CloseRST, wantErr: "connection reset by peer"},
		{name: "rst at encrypted login7", encrypt: "true", phase: PhaseLogin7, style: StyleRST, wantBy: SideServer, wantKind: CloseRST, wantErr: "connection reset by peer"},
		{name: "silent at prelogin", encrypt: "disable", phase: PhasePreloginRequest, silent: true, wantBy: SideClient, wantKind: CloseFIN, wantErr: "timeout"},
		{name: "silent at client hello", encrypt: "true", phase: PhaseTLSClientHello, silent: true, wantBy: SideClient, wantKind: CloseFIN, wantErr: "timeout"},
	}
	// A server whose answers are held back (a delayed PRELOGIN or login
	// response): the client gives up in the phase before, still waiting
	// for the server.
	held := []struct {
		name      string
		encrypt   string
		phase     Phase // the phase whose bytes are held
		wantPhase Phase // where the client gives up
	}{
		{"prelogin response held", "disable", PhasePreloginResponse, PhasePreloginRequest},
		{"login response held", "disable", PhaseLoginResponse, PhaseLogin7},
		{"encrypted login response held", "true", PhaseLoginResponse, PhaseLogin7},
	}
	for _, tc := range held {
		t.Run(tc.name, func(t *testing.T) {
			emu := testkit.StartEmulator(t, startEmuCfg(tds.EncryptOff))
			p, rs := startProxy(t, emu.Addr(), Options{Decider: phaseDecider{phase: tc.phase, v: Verdict{Delay: 3 * time.Second, Rule: "hold"}}})
			_, err := testkit.SelectOne(t, testkit.GoDSN(p.Addr().String(), tc.encrypt, url.Values{"connection timeout": {"1"}}), testkit.Query{})
			if err == nil || !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("client error = %v, want a timeout", err)
			}
			rec := rs.next(t)
			if c := rec.Close; c == nil || c.By != SideClient || c.Phase != tc.wantPhase || c.Awaiting != SideServer {
				t.Errorf("close = %+v, want by client in %s awaiting the server", rec.Close, tc.wantPhase)
			}
			var heldMark bool
			for _, m := range rec.Phases {
				heldMark = heldMark || m.Phase == tc.phase && m.Held == 3*time.Second
			}
			if !heldMark {
				t.Errorf("phases %+v do not show %s held 3s", rec.Phases, tc.phase)
			}
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu := testkit.StartEmulator(t, startEmuCfg(tds.EncryptOff))
			v := Verdict{Close: true, Style: tc.style, Rule: "test"}
			if tc.silent {
				v = Verdict{Delay: 4 * time.Second, Rule: "test"}
			}
			bad, _ := startProxy(t, emu.Addr(), Options{Decider: phaseDecider{phase: tc.phase, v: v}})
			p, rs := startProxy(t, bad.Addr().String(), Options{})
			_, err := testkit.SelectOne(t, testkit.GoDSN(p.Addr().String(), tc.encrypt, url.Values{"connection timeout": {"1"}}), testkit.Query{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("client error = %v, want it to contain %q", err, tc.wantErr)
			}
			rec := rs.next(t)
			if rec.Close == nil {
				t.Fatal("no close recorded")
			}
			if rec.Close.By != tc.wantBy || rec.Close.Kind != tc.wantKind || rec.Close.Phase != tc.phase {
				t.Errorf("close = %+v, want by %s kind %s phase %s", rec.Close, tc.wantBy, tc.wantKind, tc.phase)
			}
			if tc.silent && (rec.Close.Awaiting != SideServer || rec.Close.Silence < 500*time.Millisecond) {
				t.Errorf("silent server: awaiting %q after %v, want server after ~1s", rec.Close.Awaiting, rec.Close.Silence)
			}
		})
	}
}

func startEmuCfg(enc tds.Encryption) (cfg emulator.Config) {
	cfg.Encrypt = enc
	cfg.User, cfg.Password = "sa", "Secret-Pa55"
	return cfg
}

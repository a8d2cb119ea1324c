package interop

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/testkit/proxykit"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// startProxyTo runs a passthrough proxy in front of upstream and returns its
// port and the channel its finished records arrive on.
func startProxyTo(t *testing.T, upstream string) (int, <-chan *proxy.Record) {
	t.Helper()
	sink, recs := proxykit.Records(16)
	p := proxykit.Start(t, proxy.Config{Name: "interop", Upstream: upstream}, proxy.Options{Sink: sink})
	return proxykit.Port(p), recs
}

func nextRecord(t *testing.T, recs <-chan *proxy.Record) *proxy.Record {
	t.Helper()
	return proxykit.Next(t, recs, 15*time.Second)
}

func recPhases(r *proxy.Record) []proxy.Phase {
	var out []proxy.Phase
	for _, m := range r.Phases {
		out = append(out, m.Phase)
	}
	return out
}

// Every real client, in every encryption mode it has, through the proxy to
// the emulator: the query succeeds, and the record shows how it negotiated.
func TestClientsThroughProxy(t *testing.T) {
	emu, _ := startEmulator(t, tds.EncryptOff)
	port, recs := startProxyTo(t, emu.Addr())
	pem := emu.CertificatePEM()
	tlsPhases := []proxy.Phase{proxy.PhaseTLSClientHello, proxy.PhaseTLSServerHello, proxy.PhaseTLSClientFinished, proxy.PhaseTLSServerFinished}
	cases := []struct {
		cm       clientMode
		protocol proxy.Protocol
		scope    string // "" for strict
		tls      bool
		alpn     string
		visible  bool // LOGIN7 in plaintext
		library  string
	}{
		{tediousMode(false, false), "tds7", "none", false, "", true, "Tedious"},
		{tediousMode(true, false), "tds7", "session", true, "", false, ""},
		{tediousMode("strict", false), "tds8-strict", "", true, "tds/8.0", false, ""},
		{tsqlMode("off"), "tds7", "none", false, "", true, ""},
		{tsqlMode("request"), "tds7", "login-only", true, "", false, ""},
		{tsqlMode("require"), "tds7", "session", true, "", false, ""},
		{mssqlMode("disable"), "tds7", "none", false, "", true, "go-mssqldb"},
		{mssqlMode("false"), "tds7", "login-only", true, "", false, ""},
		{mssqlMode("true"), "tds7", "session", true, "", false, ""},
		{mssqlMode("strict"), "tds8-strict", "", true, "tds/8.0", false, ""},
		{jdbcMode("false"), "tds7", "login-only", true, "", false, ""},
		{jdbcMode("true"), "tds7", "session", true, "", false, ""},
		{jdbcMode("strict"), "tds8-strict", "", true, "tds/8.0", false, ""},
		{odbcMode("no"), "tds7", "login-only", true, "", false, ""},
		{odbcMode("yes"), "tds7", "session", true, "", false, ""},
		{odbcMode("strict"), "tds8-strict", "", true, "tds/8.0", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.cm.client+"/"+tc.cm.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := tc.cm.run(ctx, t, port, emuPassword, "SELECT 1", pem)
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK || len(res.Rows) != 1 || res.Rows[0][0] != "1" {
				t.Fatalf("through the proxy: ok=%v rows=%q error %q", res.OK, res.Rows, res.Error)
			}
			rec := nextRecord(t, recs)
			if rec.Protocol != tc.protocol {
				t.Errorf("protocol %q, want %q", rec.Protocol, tc.protocol)
			}
			ph := recPhases(rec)
			if !slices.Contains(ph, proxy.PhaseEstablished) || !slices.Contains(ph, proxy.PhaseLogin7) {
				t.Errorf("phases %v lack login7/established", ph)
			}
			if tc.scope != "" && (rec.Prelogin == nil || rec.Prelogin.Scope != tc.scope) {
				t.Errorf("prelogin %+v, want scope %s", rec.Prelogin, tc.scope)
			}
			for _, p := range tlsPhases {
				if slices.Contains(ph, p) != tc.tls {
					t.Errorf("phase %s present=%v, want %v (phases %v)", p, !tc.tls, tc.tls, ph)
				}
			}
			if tc.tls {
				ti := rec.TLS
				if ti == nil || ti.Version == "" || ti.CipherSuite == "" || ti.ClientHello == nil || ti.ClientHello.JA4 == "" {
					t.Fatalf("tls record incomplete: %+v", ti)
				}
				if tc.alpn != "" && !slices.Contains(ti.ClientHello.ALPN, tc.alpn) {
					t.Errorf("ALPN %v, want %s", ti.ClientHello.ALPN, tc.alpn)
				}
				if ti.Version != "TLS 1.3" {
					if len(ti.Certificates) == 0 || ti.Certificates[0].SignatureAlgorithm != "SHA256-RSA" {
						t.Errorf("certificates %+v, want the emulator's SHA256-RSA", ti.Certificates)
					}
				}
				t.Logf("%s: %s %s SNI=%q JA4=%s", tc.cm.client, ti.Version, ti.CipherSuite, ti.ClientHello.SNI, ti.ClientHello.JA4)
			}
			if rec.Login == nil || rec.Login.Visible != tc.visible {
				t.Errorf("login %+v, want visible=%v", rec.Login, tc.visible)
			} else if tc.visible {
				if rec.Login.User != emuUser || rec.Login.Outcome != "ok" {
					t.Errorf("login %+v, want user %s outcome ok", rec.Login, emuUser)
				}
				if tc.library != "" && !strings.EqualFold(rec.Login.Library, tc.library) {
					t.Errorf("library %q, want %q", rec.Login.Library, tc.library)
				}
				t.Logf("%s: LOGIN7 library %q version %s app %q", tc.cm.client, rec.Login.Library, rec.Login.LibraryVersion, rec.Login.App)
			}
			if rec.Close == nil || rec.Close.Phase != proxy.PhaseEstablished || rec.Close.Kind != proxy.CloseFIN {
				t.Errorf("close %+v, want a FIN in established", rec.Close)
			}
			if len(rec.ParseIssues) > 0 {
				t.Errorf("parse issues %+v", rec.ParseIssues)
			}
		})
	}
}

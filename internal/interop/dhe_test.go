package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// startDHEEmulator runs an emulator that negotiates TLS_DHE_RSA with the
// DHE engine (--dhe prefer) in the given group, behind a passthrough proxy.
func startDHEEmulator(t *testing.T, cfg emulator.Config) (*emulator.Server, int, <-chan *proxy.Record) {
	t.Helper()
	cfg.Listen, cfg.User, cfg.Password = "127.0.0.1:0", emuUser, emuPassword
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := emu.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	port, recs := startProxyTo(t, emu.Addr())
	return emu, port, recs
}

// TestRealClientsNegotiateDHE: tedious (OpenSSL), FreeTDS tsql (GnuTLS)
// and, when installed, the JDBC (JSSE) and ODBC (OpenSSL) drivers meet an
// emulator that prefers DHE, inside PRELOGIN and in strict mode, and run
// SELECT 1 over a real TLS_DHE_RSA session. The passthrough proxy's record
// shows the DHE suite and the prime's size.
func TestRealClientsNegotiateDHE(t *testing.T) {
	type tcase struct {
		cm    clientMode
		group string
	}
	var cases []tcase
	for _, cm := range []clientMode{tediousMode(true, false), tediousMode("strict", false), tsqlMode("request"), tsqlMode("require"),
		jdbcMode("true"), jdbcMode("strict"), odbcMode("yes"), odbcMode("strict")} {
		cases = append(cases, tcase{cm, "ffdhe2048"})
	}
	// Every other group with the two OpenSource stacks.
	for _, g := range []string{"ffdhe3072", "ffdhe4096", "modp2048", "rfc5114-2048-256", "modp1024"} {
		cases = append(cases, tcase{tediousMode(true, false), g}, tcase{tsqlMode("require"), g})
	}
	for _, tc := range cases {
		t.Run(tc.cm.client+"/"+tc.cm.mode+"/"+tc.group, func(t *testing.T) {
			group, err := dhe.GroupByName(tc.group)
			if err != nil {
				t.Fatal(err)
			}
			emu, port, recs := startDHEEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, DHE: emulator.DHEPrefer, DHEGroup: tc.group})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := tc.cm.run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK || len(res.Rows) != 1 || res.Rows[0][0] != "1" {
				t.Fatalf("ok=%v rows=%q error %q cause %q", res.OK, res.Rows, res.Error, res.Cause)
			}
			if st := emu.Stats(); st.DHEHandshakes != 1 {
				t.Errorf("emulator stats %+v, want one DHE handshake", st)
			}
			rec := nextRecord(t, recs)
			ti := rec.TLS
			if ti == nil || !strings.HasPrefix(ti.CipherSuite, "TLS_DHE_RSA_") || ti.KeyExchange == nil ||
				ti.KeyExchange.Kind != "DHE" || ti.KeyExchange.DHPrimeBits != group.Bits() {
				t.Fatalf("record TLS %s", recordJSON(rec))
			}
			t.Logf("%s %s: %s %s, %d-bit prime", tc.cm.client, tc.cm.mode, ti.Version, ti.CipherSuite, ti.KeyExchange.DHPrimeBits)
		})
	}
}

// TestRealClientsDHEOff: with --dhe off the same clients negotiate ECDHE
// with crypto/tls, as after the fix (DHE removed from the server's policy).
func TestRealClientsDHEOff(t *testing.T) {
	for _, cm := range []clientMode{tediousMode(true, false), tsqlMode("require")} {
		t.Run(cm.client, func(t *testing.T) {
			emu, port, recs := startDHEEmulator(t, emulator.Config{Encrypt: tds.EncryptOff})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
			if err != nil || !res.OK {
				t.Fatalf("err %v, result %+v", err, res)
			}
			if rec := nextRecord(t, recs); rec.TLS == nil || strings.Contains(rec.TLS.CipherSuite, "DHE_RSA") && !strings.Contains(rec.TLS.CipherSuite, "ECDHE") {
				t.Errorf("record TLS %s", recordJSON(rec))
			}
		})
	}
}

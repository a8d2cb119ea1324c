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

// TestRealClientsForcedLeadingZero: with the lz2049 group (a 2049-bit
// prime just above 2^2048, docs/dhe.md) nearly every shared secret starts
// with a zero byte, so an emulator that pads Z (unpatched Windows) fails
// every real client, which all strip it; each failure style gives the
// client's own error. Against an emulator that strips, the same clients
// connect. JSSE (the JDBC driver) refuses a prime whose size is not a
// multiple of 64 bits, so it cannot be forced this way (and with such a
// prime the rate is at most 1/128): it is checked to refuse the group.
func TestRealClientsForcedLeadingZero(t *testing.T) {
	clients := []clientMode{tediousMode(true, false), tediousMode("strict", false), tsqlMode("request"), tsqlMode("require"), odbcMode("yes"), odbcMode("strict")}
	for _, cm := range clients {
		for _, fail := range []dhe.FailMode{dhe.FailFIN, dhe.FailRST, dhe.FailAlert} {
			t.Run(cm.client+"/"+cm.mode+"/pad/"+fail.String(), func(t *testing.T) {
				emu, port, recs := startDHEEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, DHE: emulator.DHEPrefer, DHEGroup: "lz2049", DHEZ: dhe.ZPad, DHEFail: fail})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
				if err != nil {
					t.Fatal(err)
				}
				st := emu.Stats()
				t.Logf("%s vs pad/%s: error %q cause %q code %q; server: %d TLS failures, %d leading zeros", cm.client, fail, res.Error, res.Cause, res.Code, st.TLSFailures, st.DHELeadingZero)
				if res.OK || st.TLSFailures == 0 || st.DHEHandshakes != 0 || st.DHELeadingZero != st.TLSFailures {
					t.Fatalf("ok=%v stats %+v", res.OK, st)
				}
				if want := forcedLeadingZeroError(cm, fail); !strings.Contains(res.Error+"\n"+res.Cause, want) {
					t.Errorf("error %q cause %q, want %q", res.Error, res.Cause, want)
				}
				rec := nextRecord(t, recs)
				if rec.TLS == nil || rec.TLS.KeyExchange == nil || rec.TLS.KeyExchange.DHPrimeBits != 2049 {
					t.Errorf("record %s", recordJSON(rec))
				}
			})
		}
		t.Run(cm.client+"/"+cm.mode+"/strip", func(t *testing.T) {
			emu, port, _ := startDHEEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, DHE: emulator.DHEPrefer, DHEGroup: "lz2049"})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := cm.run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
			if err != nil || !res.OK {
				t.Fatalf("err %v, result %q %q", err, res.Error, res.Cause)
			}
			if st := emu.Stats(); st.DHEHandshakes != 1 || st.DHELeadingZero != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestJDBCRefusesLZ2049: JSSE will not use a 2049-bit DH group.
func TestJDBCRefusesLZ2049(t *testing.T) {
	emu, port, _ := startDHEEmulator(t, emulator.Config{Encrypt: tds.EncryptOff, DHE: emulator.DHEPrefer, DHEGroup: "lz2049", DHEZ: dhe.ZPad})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := jdbcMode("true").run(ctx, t, port, emuPassword, "SELECT 1", emu.CertificatePEM())
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || !strings.Contains(res.Error, "Could not generate DH keypair") ||
		!strings.Contains(res.Cause, "DH key size must be multiple of 64, and can only range from 512 to 8192 (inclusive). The specific key size 2049 is not supported") {
		t.Errorf("JDBC with a 2049-bit group: ok=%v error %q cause %q", res.OK, res.Error, res.Cause)
	}
}

// forcedLeadingZeroError is the part of each client's error text (or its
// cause) that the leading-zero failure gives, by the server's failure
// style, as observed (docs/dhe.md).
func forcedLeadingZeroError(cm clientMode, fail dhe.FailMode) string {
	if cm.client == ClientTedious && cm.mode == "encrypt=strict" && fail == dhe.FailFIN {
		// Node's TLS socket on TCP sees the FIN itself; inside PRELOGIN
		// tedious's own stream does.
		return "Client network socket disconnected before secure TLS connection was established"
	}
	texts := map[string][3]string{ // fin, rst, alert
		ClientTedious: {"socket hang up", "read ECONNRESET", "sslv3 alert bad record mac"},
		ClientTSQL:    {"Unexpected EOF from the server", "Error 20002 (severity 9):\n\tAdaptive Server connection failed", "Error 20002 (severity 9):\n\tAdaptive Server connection failed"},
		ClientODBC:    {"TCP Provider: Error code 0x2746", "TCP Provider: Error code 0x68", "SSL Provider: [error:0A0003FC:SSL routines::sslv3 alert bad record mac:SSL alert number 20]"},
	}
	t := texts[cm.client]
	switch fail {
	case dhe.FailFIN:
		return t[0]
	case dhe.FailRST:
		return t[1]
	}
	return t[2]
}

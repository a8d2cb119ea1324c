package interop

// The six documented 10054 scenarios (faults/scenario.go) with Microsoft's
// own drivers: the JDBC driver 13.6.2.jre11 (JSSE on JDK 17) and ODBC
// Driver 18.6 through mssql-python 1.16.0 (the system's OpenSSL 3.0). The
// same checks as scenarios_test.go: (a) the driver's own error, word for
// word; (b) the proxy's record; (c) a connection the rule does not match
// succeeds; (d) the fixed client (or server) succeeds. docs/clients.md has
// the table these tests assert.
//
// Error texts measured on this project's machines (JDBC: the
// SQLServerException's message without " ClientConnectionId:<uuid>",
// its SQLState and innermost cause; ODBC: str() of the mssql_python
// exception, its SQLSTATE and the driver's diagnostic):
//
//	RST during the TLS handshake (1, 2, 4 at tls.client_hello; 3 and 5 at
//	tls.client_finished, strict):
//	  jdbc  "\"encrypt\" property is set to \"<encrypt>\" and
//	        \"trustServerCertificate\" property is set to \"<trust>\" but the
//	        driver could not establish a secure connection to SQL Server by
//	        using Secure Sockets Layer (SSL) encryption: Error: Connection
//	        reset.", 08S01, cause java.net.SocketException: Connection reset
//	  odbc  "Driver Error: Client unable to establish connection; DDBC Error:
//	        [Microsoft]TCP Provider: Error code 0x68", 08001 (0x68 = 104,
//	        ECONNRESET)
//	FIN at tls.client_hello (nothing from the server yet):
//	  jdbc  "... Error: SQL Server did not return a response. The connection
//	        has been closed..", 08S01; one connection, no retry
//	  odbc  "... TCP Provider: Error code 0x2746" (0x2746 = 10054: the driver
//	        reports a FIN in the handshake as WSAECONNRESET)
//	FIN in strict (TDS 8.0) at tls.client_finished:
//	  jdbc  "... Error: Remote host terminated the handshake.", cause
//	        java.io.EOFException: SSL peer shut down incorrectly; no retry
//	  odbc  "... TCP Provider: Error code 0x2746"
//	FIN after a server packet of the handshake was read (TDS 7.x, TLS
//	inside PRELOGIN packets; mid-flight, or after the client's Finished
//	where the DHE failures strike): JDBC's "SQL Server returned an
//	incomplete response" is an intermittent TLS failure to it: it retries
//	silently, 5 times
//	(SQLServerConnection.INTERMITTENT_TLS_MAX_RETRY), so a fault that hits
//	one connection in N is never seen; an RST is reported at once.
//	alert:handshake_failure at tls.client_hello:
//	  jdbc  "... Error: Received fatal alert: handshake_failure.", cause
//	        javax.net.ssl.SSLHandshakeException
//	  odbc  "... [Microsoft]SSL Provider: [error:0A000410:SSL routines::sslv3
//	        alert handshake failure:SSL alert number 40]"

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// jdbcTLSFailed is the JDBC driver's message for a TLS handshake that
// failed with detail, for the given encrypt and trustServerCertificate.
func jdbcTLSFailed(encrypt string, trust bool, detail string) string {
	return fmt.Sprintf("\"encrypt\" property is set to \"%s\" and \"trustServerCertificate\" property is set to \"%v\" but the driver "+
		"could not establish a secure connection to SQL Server by using Secure Sockets Layer (SSL) encryption: Error: %s.", encrypt, trust, detail)
}

// odbcConnFailed is mssql-python's text for an ODBC Driver 18 connection
// failure (SQLSTATE 08001) with the driver's diagnostic after "[Microsoft]".
func odbcConnFailed(diag string) string {
	return "Driver Error: Client unable to establish connection; DDBC Error: [Microsoft]" + diag
}

// jdbcResetIn is the JDBC symptom of an RST during the handshake.
func jdbcResetIn(encrypt string, trust bool) symptom {
	return func(t *testing.T, r *rig, res *Result, err error) {
		t.Helper()
		assertJDBC(t, res, err, jdbcTLSFailed(encrypt, trust, "Connection reset"), jdbcException, "08S01", "java.net.SocketException: Connection reset")
		if res.Phase != "connect" {
			t.Errorf("jdbc failed in %q, want connect", res.Phase)
		}
	}
}

// odbcReset is ODBC Driver 18's symptom of an RST during the handshake.
func odbcReset(t *testing.T, r *rig, res *Result, err error) {
	t.Helper()
	assertODBC(t, res, err, odbcConnFailed("TCP Provider: Error code 0x68"), odbcOperational, "08001",
		odbcDriverPrefix+"TCP Provider: Error code 0x68")
}

// Old clients for scenario 1: TLS 1.0 and 1.1 only.
var (
	// JDK 17 disables TLS 1.0 and 1.1 in jdk.tls.disabledAlgorithms; an
	// old deployment's java.security did not.
	jdbcOldTLS = map[string]string{"jdk.tls.disabledAlgorithms": "SSLv3, RC4, DES, MD5withRSA, DH keySize < 1024, EC keySize < 224, 3DES_EDE_CBC, anon, NULL"}
	jdbcOld    = JDBCConfig{Encrypt: "true", Protocols: []string{"TLSv1", "TLSv1.1"}, SecurityProps: jdbcOldTLS}
	// OpenSSL 3 refuses TLS < 1.2 at its default security level.
	odbcOld = ODBCConfig{Encrypt: "yes", OpenSSL: []string{"MinProtocol = TLSv1", "MaxProtocol = TLSv1.1", "CipherString = DEFAULT:@SECLEVEL=0"}}
)

// TestScenarioProtocolMismatchMSDrivers: scenario 1 with the JDBC and ODBC
// drivers limited to TLS 1.0-1.1.
func TestScenarioProtocolMismatchMSDrivers(t *testing.T) {
	t.Parallel()
	rule := scenarioRule(faults.ScenarioProtocolMismatch, map[string]string{"server_tls": "1.2"})
	offersAtMost11 := func(t *testing.T, rec *proxy.Record) {
		t.Helper()
		if ch := rec.TLS.ClientHello; ch == nil || ch.HighestVersion != "TLS 1.1" {
			t.Errorf("ClientHello %+v: want TLS 1.1 as the highest version", ch)
		}
	}
	for _, tt := range []struct {
		name string
		s    helloScenario
	}{
		{ClientJDBC, helloScenario{broken: jdbcRun(jdbcOld), fixed: jdbcRun(JDBCConfig{Encrypt: "true"}), symptom: jdbcResetIn("true", true)}},
		{ClientODBC, helloScenario{broken: odbcRun(odbcOld), fixed: odbcRun(ODBCConfig{Encrypt: "yes"}), symptom: odbcReset}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.s.emu, tt.s.rule, tt.s.failed = emuConfig(), rule, offersAtMost11
			tt.s.run(t)
		})
	}
}

// TestScenarioCipherMismatchMSDrivers: scenario 2, a server allowing only
// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384; the drivers offer only
// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (TLS 1.2, where suites are a
// client's choice), then, fixed, the server's suite.
func TestScenarioCipherMismatchMSDrivers(t *testing.T) {
	t.Parallel()
	const serverSuite = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
	rule := scenarioRule(faults.ScenarioCipherMismatch, map[string]string{"server_ciphers": serverSuite})
	emu := emuConfig()
	emu.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	notOffered := func(t *testing.T, rec *proxy.Record) {
		t.Helper()
		if ch := rec.TLS.ClientHello; ch == nil || slices.Contains(ch.CipherSuites, serverSuite) || !slices.Contains(ch.CipherSuites, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") {
			t.Errorf("ClientHello %+v: want TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 and not %s", ch, serverSuite)
		}
	}
	for _, tt := range []struct {
		name string
		s    helloScenario
	}{
		{ClientJDBC, helloScenario{
			broken:  jdbcRun(JDBCConfig{Encrypt: "true", Protocols: []string{"TLSv1.2"}, CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}}),
			fixed:   jdbcRun(JDBCConfig{Encrypt: "true", Protocols: []string{"TLSv1.2"}, CipherSuites: []string{serverSuite}}),
			symptom: jdbcResetIn("true", true),
		}},
		{ClientODBC, helloScenario{
			broken:  odbcRun(ODBCConfig{Encrypt: "yes", OpenSSL: []string{"MaxProtocol = TLSv1.2", "CipherString = ECDHE-RSA-AES128-GCM-SHA256"}}),
			fixed:   odbcRun(ODBCConfig{Encrypt: "yes", OpenSSL: []string{"MaxProtocol = TLSv1.2", "CipherString = ECDHE-RSA-AES256-GCM-SHA384"}}),
			symptom: odbcReset,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.s.emu, tt.s.rule, tt.s.failed = emu, rule, notOffered
			tt.s.run(t)
		})
	}
}

// TestScenarioWeakCertHashMSDrivers: scenario 4. What the drivers list in
// signature_algorithms (TLS 1.2/1.3 ClientHello, defaults):
//
//	jdbc (JSSE, JDK 17): ecdsa_secp256r1_sha256, ecdsa_secp384r1_sha384,
//	  ecdsa_secp521r1_sha512, ed25519, ed448, rsa_pss_rsae_sha256/384/512,
//	  rsa_pss_pss_sha256/384/512, rsa_pkcs1_sha256/384/512, dsa_sha256,
//	  ecdsa_sha224, rsa_pkcs1_sha224, dsa_sha224, ecdsa_sha1,
//	  rsa_pkcs1_sha1, dsa_sha1 — no MD5, but SHA-224 and SHA-1; JSSE also
//	  sends signature_algorithms_cert with the same list;
//	odbc (OpenSSL 3.0 with the driver's settings): as tedious (also
//	  OpenSSL 3.0): SHA-224 but no SHA-1 and no MD5; no
//	  signature_algorithms_cert.
//
// So md5 closes both, sha1 only ODBC, sha224 and sha512 neither.
func TestScenarioWeakCertHashMSDrivers(t *testing.T) {
	t.Parallel()
	rule := scenarioRule(faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "md5"})
	fixedRule := scenarioRule(faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "sha256"})
	for _, tt := range []struct {
		name   string
		client clientRun
		fail   symptom
		closes map[string]bool
	}{
		{ClientJDBC, jdbcRun(JDBCConfig{Encrypt: "true"}), jdbcResetIn("true", true),
			map[string]bool{"sha1": false, "sha224": false, "sha512": false}},
		{ClientODBC, odbcRun(ODBCConfig{Encrypt: "yes"}), odbcReset,
			map[string]bool{"sha1": true, "sha224": false, "sha512": false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			helloScenario{emu: emuConfig(), rule: rule, broken: tt.client, fixedRule: &fixedRule, symptom: tt.fail,
				failed: func(t *testing.T, rec *proxy.Record) {
					t.Helper()
					ch := rec.TLS.ClientHello
					if ch == nil || len(ch.SignatureAlgorithms) == 0 || slices.Contains(ch.SignatureAlgorithms, "rsa_pkcs1_md5") {
						t.Errorf("ClientHello %+v: want signature_algorithms without rsa_pkcs1_md5", ch)
					}
					t.Logf("signature_algorithms %v; _cert %v", ch.SignatureAlgorithms, ch.SignatureAlgorithmsCert)
				}}.run(t)
		})
		t.Run(tt.name+"/other hashes", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			r := newEmuRig(t, emuConfig())
			for _, h := range []string{"sha1", "sha224", "sha512"} {
				r.setRules(t, scenarioRule(faults.ScenarioWeakCertHash, map[string]string{"cert_hash": h}))
				res, err := tt.client(ctx, t, r)
				if err != nil {
					t.Fatalf("%s: run: %v", h, err)
				}
				rec := r.next(t)
				var listed bool
				if ch := rec.TLS.ClientHello; ch != nil {
					listed = slices.Contains(ch.SignatureAlgorithms, "rsa_pkcs1_"+h)
				}
				if listed == tt.closes[h] {
					t.Errorf("%s: client lists rsa_pkcs1_%s = %v, but the test expects close = %v", h, h, listed, tt.closes[h])
				}
				if tt.closes[h] {
					tt.fail(t, r, res, nil)
					assertInjectedClose(t, rec, scenarioRule(faults.ScenarioWeakCertHash, nil).Name, proxy.PhaseTLSClientHello, proxy.CloseRST)
				} else {
					assertSelectOne(t, res, nil)
					assertNotInjected(t, rec)
				}
			}
		})
	}
}

// TestScenarioDHEMSDrivers: scenarios 3 and 5. JSSE and OpenSSL both
// negotiate DHE, so both drivers meet the close for real: TDS 8.0 strict
// against `openssl s_server` (DHE-RSA-AES128-GCM-SHA256, ffdhe2048, ALPN
// tds/8.0), TLS 1.2 and that suite only on the client, the server's
// certificate pinned (JDBC serverCertificate, ODBC ServerCertificate).
// The RST and the FIN close are both asserted. A handshake the rule lets
// through ends in the driver's login timeout (2 s), since s_server is not
// TDS.
func TestScenarioDHEMSDrivers(t *testing.T) {
	t.Parallel()
	jdbcDHE := func(srv *opensslServer) JDBCConfig {
		return JDBCConfig{Encrypt: "strict", ServerCertificatePEM: srv.certPEM, LoginTimeout: 2,
			Protocols: []string{"TLSv1.2"}, CipherSuites: []string{"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"}}
	}
	odbcDHE := func(srv *opensslServer) ODBCConfig {
		return ODBCConfig{Encrypt: "strict", ServerCertificatePEM: srv.certPEM, LoginTimeout: 2,
			OpenSSL: []string{"MaxProtocol = TLSv1.2", "CipherString = DHE-RSA-AES128-GCM-SHA256"}}
	}
	type client struct {
		name string
		run  func(srv *opensslServer) clientRun
		// rst and fin are the symptoms of each close; timedOut the
		// driver's login timeout on s_server.
		rst, fin, timedOut symptom
	}
	clients := []client{
		{ClientJDBC, func(srv *opensslServer) clientRun { return jdbcRun(jdbcDHE(srv)) },
			jdbcResetIn("strict", false),
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertJDBC(t, res, err, jdbcTLSFailed("strict", false, "Remote host terminated the handshake"), jdbcException, "08S01",
					"java.io.EOFException: SSL peer shut down incorrectly")
			},
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertJDBC(t, res, err, "Read timed out", jdbcException, "08S01", "java.net.SocketTimeoutException: Read timed out")
			}},
		{ClientODBC, func(srv *opensslServer) clientRun { return odbcRun(odbcDHE(srv)) },
			odbcReset,
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertODBC(t, res, err, odbcConnFailed("TCP Provider: Error code 0x2746"), odbcOperational, "08001", "")
			},
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertODBC(t, res, err, odbcConnFailed("TCP Provider: Timeout error [258]. "), odbcOperational, "08001", "")
			}},
	}
	dheRecord := func(t *testing.T, rec *proxy.Record) {
		t.Helper()
		if rec.Protocol != "tds8-strict" || rec.TLS == nil || rec.TLS.Version != "TLS 1.2" ||
			rec.TLS.CipherSuite != "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" ||
			rec.TLS.KeyExchange == nil || rec.TLS.KeyExchange.Kind != "DHE" || rec.TLS.KeyExchange.DHPrimeBits != 2048 {
			t.Errorf("want strict TLS 1.2 with TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 and a 2048-bit prime: %s", recordJSON(rec))
		}
		if ch := rec.TLS.ClientHello; ch == nil || !slices.Contains(ch.ALPN, "tds/8.0") {
			t.Errorf("ClientHello %+v: want ALPN tds/8.0", ch)
		}
	}
	for _, name := range []string{faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero} {
		for _, c := range clients {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				defer cancel()
				srv := startOpenSSLDHE(t)
				run := c.run(srv)
				for _, close := range []struct {
					style string
					kind  proxy.CloseKind
					check symptom
				}{{"rst", proxy.CloseRST, c.rst}, {"fin", proxy.CloseFIN, c.fin}} {
					rule := scenarioRule(name, map[string]string{"rate": "always"})
					rule.Close = close.style
					r := newRig(t, srv.addr, rule)
					res, err := run(ctx, t, r)
					close.check(t, r, res, err)
					rec := r.next(t)
					t.Logf("%s: %s", close.style, recordSummary(rec))
					dheRecord(t, rec)
					assertInjectedClose(t, rec, rule.Name, proxy.PhaseTLSClientFinished, close.kind)
					// In strict mode JSSE reads the close itself: no TDS
					// packet was cut, so JDBC does not retry.
					select {
					case extra := <-r.records:
						t.Errorf("%s: the driver connected again: %s", close.style, recordSummary(extra))
					case <-time.After(300 * time.Millisecond):
					}
				}
				// (c) rate 0 and another client's rule: the handshake
				// completes; the driver then times out on s_server.
				for _, nm := range []faults.RuleSpec{
					scenarioRule(name, map[string]string{"rate": "0"}),
					{Name: name + "-rule", Scenario: name, Options: map[string]string{"rate": "always"}, Match: otherClient},
				} {
					r := newRig(t, srv.addr, nm)
					res, err := run(ctx, t, r)
					c.timedOut(t, r, res, err)
					rec := r.next(t)
					dheRecord(t, rec)
					assertNotInjected(t, rec)
					if !rec.Reached(proxy.PhaseTLSServerFinished) {
						t.Errorf("handshake did not complete: %s", recordSummary(rec))
					}
				}
			})
		}
	}
	// (d) the fix, a policy without DHE: the same drivers (strict, TLS 1.2,
	// their default suites) against the emulator, which chooses ECDHE; the
	// rule, still "always", lets them through.
	for _, c := range []struct {
		name string
		run  func(pem []byte) clientRun
	}{
		{ClientJDBC, func(pem []byte) clientRun {
			return jdbcRun(JDBCConfig{Encrypt: "strict", ServerCertificatePEM: pem, Protocols: []string{"TLSv1.2"}})
		}},
		{ClientODBC, func(pem []byte) clientRun {
			return odbcRun(ODBCConfig{Encrypt: "strict", ServerCertificatePEM: pem, OpenSSL: []string{"MaxProtocol = TLSv1.2"}})
		}},
	} {
		t.Run("fixed/"+c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			rule := scenarioRule(faults.ScenarioDHEEnabled, map[string]string{"rate": "always"})
			r := newEmuRig(t, emulator.Config{Encrypt: tds.EncryptOn}, rule)
			res, err := c.run(r.emu.CertificatePEM())(ctx, t, r)
			assertSelectOne(t, res, err)
			rec := r.next(t)
			t.Logf("fixed: %s", recordSummary(rec))
			assertNotInjected(t, rec)
			if rec.TLS == nil || tlsbridge.SuiteKeyExchange(suiteID(rec.TLS.CipherSuite)) == "DHE" {
				t.Errorf("negotiated %+v, want a non-DHE suite", rec.TLS)
			}
		})
	}
}

// TestJDBCIntermittentTLSRetry checks what the JDBC driver's sources say
// about a close in mid-handshake, where the DHE leading-zero failure
// strikes: with the TLS handshake inside TDS PRELOGIN packets (TDS 7.x), a
// FIN after part of the server's flight makes the driver's TDSReader report
// "SQL Server returned an incomplete response", which SQLServerConnection
// treats as an intermittent TLS failure and retries, silently, up to 5
// times; an RST is reported at once. So a fault hitting 1 connection in
// 256 is invisible to a JDBC application when the server closes with FIN.
// ODBC Driver 18 does not retry either close. The cut: a generic
// limit_data (FIN) or reset (RST) fault on the server's side of the
// connection.
func TestJDBCIntermittentTLSRetry(t *testing.T) {
	t.Parallel()
	// Two cut points: 100 bytes into the server's first flight, and right
	// after the client's Finished, instead of the server's
	// ChangeCipherSpec/Finished: where the DHE failures strike (the record
	// then shows the server's Finished reaching the proxy, not the client).
	type cutAt struct {
		phase, closed proxy.Phase
		bytes         string
	}
	midFlight := cutAt{proxy.PhaseTLSServerHello, proxy.PhaseTLSServerHello, "100"}
	afterFinished := cutAt{proxy.PhaseTLSClientFinished, proxy.PhaseTLSServerFinished, "0"}
	cut := func(action string, at cutAt, first uint64) faults.RuleSpec {
		return faults.RuleSpec{Name: "cut", Action: action, Direction: "downstream", Phase: string(at.phase),
			Options: map[string]string{"bytes": at.bytes}, Match: faults.Match{First: first}}
	}
	drain := func(t *testing.T, r *rig) []*proxy.Record {
		t.Helper()
		recs := []*proxy.Record{r.next(t)}
		for {
			select {
			case rec := <-r.records:
				recs = append(recs, rec)
				continue
			case <-time.After(time.Second):
			}
			return recs
		}
	}
	jdbcIncomplete := func(t *testing.T, res *Result, err error) {
		assertJDBC(t, res, err, jdbcTLSFailed("true", true, "SQL Server returned an incomplete response. The connection has been closed."),
			jdbcException, "08S01", "")
	}
	jdbcReset := func(t *testing.T, res *Result, err error) {
		assertJDBC(t, res, err, jdbcTLSFailed("true", true, "Connection reset"), jdbcException, "08S01", "java.net.SocketException: Connection reset")
	}
	selectOne := func(t *testing.T, res *Result, err error) { assertSelectOne(t, res, err) } // the application never sees the failure
	for _, tt := range []struct {
		name   string
		action string
		at     cutAt
		first  uint64
		client clientRun
		// conns is how many connections the driver made.
		conns int
		check func(t *testing.T, res *Result, err error)
	}{
		{"jdbc/mid-flight/fin every connection", "limit_data", midFlight, 0, jdbcRun(JDBCConfig{Encrypt: "true"}), 6, jdbcIncomplete},
		{"jdbc/mid-flight/fin first connection only", "limit_data", midFlight, 1, jdbcRun(JDBCConfig{Encrypt: "true"}), 2, selectOne},
		{"jdbc/mid-flight/rst", "reset", midFlight, 1, jdbcRun(JDBCConfig{Encrypt: "true"}), 1, jdbcReset},
		{"jdbc/after finished/fin every connection", "limit_data", afterFinished, 0, jdbcRun(JDBCConfig{Encrypt: "true"}), 6, jdbcIncomplete},
		{"jdbc/after finished/fin first connection only", "limit_data", afterFinished, 1, jdbcRun(JDBCConfig{Encrypt: "true"}), 2, selectOne},
		{"jdbc/after finished/rst", "reset", afterFinished, 1, jdbcRun(JDBCConfig{Encrypt: "true"}), 1, jdbcReset},
		{"odbc/mid-flight/fin first connection only", "limit_data", midFlight, 1, odbcRun(ODBCConfig{Encrypt: "yes"}), 1, func(t *testing.T, res *Result, err error) {
			assertODBC(t, res, err, odbcConnFailed("TCP Provider: Error code 0x2746"), odbcOperational, "08001", "")
		}},
		{"odbc/mid-flight/rst", "reset", midFlight, 1, odbcRun(ODBCConfig{Encrypt: "yes"}), 1, func(t *testing.T, res *Result, err error) {
			assertODBC(t, res, err, odbcConnFailed("TCP Provider: Error code 0x68"), odbcOperational, "08001", "")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			r := newEmuRig(t, emuConfig(), cut(tt.action, tt.at, tt.first))
			res, err := tt.client(ctx, t, r)
			tt.check(t, res, err)
			recs := drain(t, r)
			if len(recs) != tt.conns {
				t.Errorf("%d connections, want %d", len(recs), tt.conns)
			}
			for i, rec := range recs {
				t.Logf("connection %d: %s", i+1, recordSummary(rec))
				cutHere := tt.first == 0 || uint64(i) < tt.first
				if cutHere && (rec.Close == nil || rec.Close.By != proxy.SideProxy || rec.Close.Phase != tt.at.closed) {
					t.Errorf("connection %d: close %+v, want the proxy's at %s", i+1, rec.Close, tt.at.closed)
				}
			}
		})
	}
}

// TestScenarioDelayedAcceptMSDrivers: scenario 6's timeout forms (3 s held
// against a 1 s login timeout) and reject.
func TestScenarioDelayedAcceptMSDrivers(t *testing.T) {
	t.Parallel()
	clients := []struct {
		name             string
		short, mid, long clientRun
		timedOut, reset  symptom
	}{
		{ClientJDBC,
			jdbcRun(JDBCConfig{Encrypt: "true", LoginTimeout: 1}),
			jdbcRun(JDBCConfig{Encrypt: "true", LoginTimeout: 2}),
			jdbcRun(JDBCConfig{Encrypt: "true", LoginTimeout: 5}),
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				// loginTimeout bounds each socket read while logging in,
				// whichever phase is held.
				assertJDBC(t, res, err, "Read timed out", jdbcException, "08S01", "java.net.SocketTimeoutException: Read timed out")
			},
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				// Which form depends on whether the RST beats the driver's
				// first write or its connect(2) completion.
				assertFailure(t, res, err, nil)
				forms := map[string]string{
					"Connection reset":         "java.net.SocketException: Connection reset",
					"Connection reset by peer": "java.net.SocketException: Connection reset by peer",
					fmt.Sprintf("The TCP/IP connection to the host 127.0.0.1, port %d has failed. Error: \"Connection reset by peer. "+
						"Verify the connection properties. Make sure that an instance of SQL Server is running on the host and accepting "+
						"TCP/IP connections at the port. Make sure that TCP connections to the port are not blocked by a firewall.\".", r.port): "",
				}
				cause, ok := forms[res.Error]
				if !ok || res.Cause != cause || res.Code != "08S01" || res.ErrorClass != jdbcException {
					t.Errorf("jdbc: error %q cause %q SQLState %q; want one of %q, 08S01", res.Error, res.Cause, res.Code, forms)
				}
			}},
		{ClientODBC,
			odbcRun(ODBCConfig{Encrypt: "yes", LoginTimeout: 1}),
			odbcRun(ODBCConfig{Encrypt: "yes", LoginTimeout: 2}),
			odbcRun(ODBCConfig{Encrypt: "yes", LoginTimeout: 5}),
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertODBC(t, res, err, odbcConnFailed("TCP Provider: Timeout error [258]. "), odbcOperational, "08001", "")
			},
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertFailure(t, res, err, nil)
				// error → SQLSTATE. The last form: the RST landed after the
				// driver had connected and sent its PRELOGIN, so it reports
				// a broken link (08S01) rather than a failed connect (seen
				// once in 250 rejects on a loaded machine).
				forms := map[string]string{
					odbcConnFailed(odbcHandshakesBeforeLogin):                                                        "08001",
					odbcConnFailed("TCP Provider: Error code 0x2749"):                                                "08001", // WSAENOTCONN
					odbcConnFailed("TCP Provider: Error code 0x68"):                                                  "08001", // ECONNRESET
					"Driver Error: Communication link failure; DDBC Error: [Microsoft]TCP Provider: Error code 0x68": "08S01",
				}
				if code, ok := forms[res.Error]; !ok || res.Code != code {
					t.Errorf("odbc: error %q SQLSTATE %q; want one of %q (error → SQLSTATE)", res.Error, res.Code, forms)
				}
			}},
	}
	forms := []struct {
		name   string
		opts   map[string]string
		phase  proxy.Phase
		reject bool
	}{
		{"accept_delay", map[string]string{"accept_delay": "3s"}, proxy.PhaseAccept, false},
		{"prelogin_delay", map[string]string{"prelogin_delay": "3s"}, proxy.PhasePreloginResponse, false},
		{"login_delay", map[string]string{"login_delay": "3s"}, proxy.PhaseLoginResponse, false},
		{"reject", map[string]string{"reject": "true"}, proxy.PhaseAccept, true},
	}
	for _, f := range forms {
		for _, c := range clients {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				defer cancel()
				rule := scenarioRule(faults.ScenarioDelayedAccept, f.opts)
				r := newEmuRig(t, emuConfig(), rule)
				res, err := c.short(ctx, t, r)
				rec := r.next(t)
				t.Logf("fault: %s", recordSummary(rec))
				if f.reject {
					c.reset(t, r, res, err)
					assertInjectedClose(t, rec, rule.Name, proxy.PhaseAccept, proxy.CloseRST)
				} else {
					c.timedOut(t, r, res, err)
					assertDelayed(t, rec, rule.Name, f.phase)
					if cl := rec.Close; cl == nil || cl.By != proxy.SideClient {
						t.Errorf("close %+v: want the client's close", cl)
					}
				}
				// Drain what a retrying driver added.
				for drained := false; !drained; {
					select {
					case extra := <-r.records:
						t.Logf("another connection: %s", recordSummary(extra))
					case <-time.After(500 * time.Millisecond):
						drained = true
					}
				}
				r.setRules(t, faults.RuleSpec{Name: rule.Name, Scenario: rule.Scenario, Options: rule.Options, Match: otherClient})
				res, err = c.mid(ctx, t, r)
				assertSelectOne(t, res, err)
				if rec := r.next(t); len(rec.Faults) != 0 {
					t.Errorf("a rule that does not match left decisions %+v", rec.Faults)
				}
				if f.reject {
					return
				}
				r.setRules(t, rule)
				res, err = c.long(ctx, t, r)
				assertSelectOne(t, res, err)
				assertDelayed(t, r.next(t), rule.Name, f.phase)
			})
		}
	}
}

// TestScenarioCloseStylesMSDrivers: scenario 1's decision closing with FIN
// and with a TLS alert instead of RST.
func TestScenarioCloseStylesMSDrivers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		close  string
		kind   proxy.CloseKind
		client clientRun
		check  func(t *testing.T, res *Result, err error)
	}{
		{"fin/" + ClientJDBC, "fin", proxy.CloseFIN, jdbcRun(jdbcOld), func(t *testing.T, res *Result, err error) {
			assertJDBC(t, res, err, jdbcTLSFailed("true", true, "SQL Server did not return a response. The connection has been closed."), jdbcException, "08S01", "")
		}},
		{"fin/" + ClientODBC, "fin", proxy.CloseFIN, odbcRun(odbcOld), func(t *testing.T, res *Result, err error) {
			assertODBC(t, res, err, odbcConnFailed("TCP Provider: Error code 0x2746"), odbcOperational, "08001", odbcDriverPrefix+"TCP Provider: Error code 0x2746")
		}},
		{"alert/" + ClientJDBC, "alert:handshake_failure", proxy.CloseAlert, jdbcRun(jdbcOld), func(t *testing.T, res *Result, err error) {
			assertJDBC(t, res, err, jdbcTLSFailed("true", true, "Received fatal alert: handshake_failure"), jdbcException, "08S01",
				"javax.net.ssl.SSLHandshakeException: Received fatal alert: handshake_failure")
		}},
		{"alert/" + ClientODBC, "alert:handshake_failure", proxy.CloseAlert, odbcRun(odbcOld), func(t *testing.T, res *Result, err error) {
			assertODBC(t, res, err, odbcConnFailed("SSL Provider: [error:0A000410:SSL routines::sslv3 alert handshake failure:SSL alert number 40]"), odbcOperational, "08001", "")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			rule := scenarioRule(faults.ScenarioProtocolMismatch, map[string]string{"server_tls": "1.2"})
			rule.Close = tt.close
			r := newEmuRig(t, emuConfig(), rule)
			res, err := tt.client(ctx, t, r)
			tt.check(t, res, err)
			rec := r.next(t)
			assertInjectedClose(t, rec, rule.Name, proxy.PhaseTLSClientHello, tt.kind)
			select {
			case extra := <-r.records:
				t.Errorf("the driver connected again: %s", recordSummary(extra))
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

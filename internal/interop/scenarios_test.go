package interop

// Real-client tests of the six documented 10054 scenarios (faults/scenario.go)
// for tedious 19.2.2 (Node 20, OpenSSL 3.0) and FreeTDS tsql 1.3.17
// (GnuTLS 3.7). Each test puts a fault-injecting proxy (proxy + faults
// engine, in process) in front of the emulator, or of `openssl s_server`
// where the emulator cannot play the server (DHE), and checks:
//
//	(a) the client's own error is the documented symptom, word for word;
//	(b) the proxy's record: who closed, how, in which phase, and the fault
//	    event naming the rule;
//	(c) a connection the rule does not match (another client address,
//	    probability 0) succeeds through the same proxy;
//	(d) the fixed client (or server) succeeds: SELECT 1 returns 1.
//
// go-mssqldb is covered by internal/lab and the cmd tests.
//
// Error texts measured on this project's machines (tedious: Result.Error /
// Code / Cause; tsql: its stderr), <port> being the proxy's port:
//
//	RST during the TLS handshake (scenarios 1, 2, 4 at tls.client_hello,
//	3 and 5 at tls.client_finished in TDS 8.0 strict):
//	  tedious  "Failed to connect to 127.0.0.1:<port> - read ECONNRESET",
//	           ESOCKET, cause "read ECONNRESET" (the handshake is part of
//	           connecting, so not "Connection lost - ...", which tedious
//	           says for a reset after PRELOGIN went unanswered)
//	  tsql     "Error 20002 (severity 9):\n\tAdaptive Server connection failed\n
//	           There was a problem connecting to the server"; TDSDUMP has
//	           GnuTLS's "handshake failed: Error in the pull function."
//	FIN at tls.client_hello:
//	  tedious  "Failed to connect to 127.0.0.1:<port> - socket hang up",
//	           ESOCKET, cause "socket hang up"
//	  tsql     "Error 20017 (severity 9):\n\tUnexpected EOF from the server"
//	           then the 20002 lines
//	alert:handshake_failure at tls.client_hello:
//	  tedious  "Failed to connect to 127.0.0.1:<port> - <OpenSSL error
//	           queue>:SSL routines:ssl3_read_bytes:sslv3 alert handshake
//	           failure:...:SSL alert number 40\n", ESOCKET
//	  tsql     the 20002 lines; TDSDUMP "Alert[2|40] - Handshake failed -
//	           was received" and "handshake failed: A TLS fatal alert has
//	           been received."
//	delayed-accept, client timeout 1 s shorter than the 3 s delay (accept,
//	PRELOGIN response or login response held):
//	  tedious  "Failed to connect to 127.0.0.1:<port> in 1000ms", ETIMEOUT
//	  tsql     "Error 20003 (severity 6):\n\tAdaptive Server connection
//	           timed out" (plus `OS error 115, "Operation now in progress"`
//	           while no TLS has started) then the 20002 lines
//	delayed-accept reject (accept, then RST at once); which form a client
//	reports depends on whether the RST beats its connect(2) completion:
//	  tedious  "Failed to connect to 127.0.0.1:<port> - Could not connect
//	           (sequence)", ESOCKET, cause "connect ECONNRESET 127.0.0.1:<port>"
//	           (or "... - read ECONNRESET" when connect won the race, or
//	           "Connection lost - write ECONNRESET" when the RST landed
//	           between connect and the PRELOGIN write)
//	  tsql     "Error 20009 (severity 9):\n\tUnable to connect: Adaptive
//	           Server is unavailable or does not exist\n\tOS error 104,
//	           \"Connection reset by peer\"" or the 20002 lines

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// scenarioTimeout bounds one scenario sub-test, every client run included.
const scenarioTimeout = 90 * time.Second

// tsqlFailed is tsql's whole stderr when FreeTDS gives up on the login
// without a more specific library error.
const tsqlFailed = "Error 20002 (severity 9):\n\tAdaptive Server connection failed\nThere was a problem connecting to the server"

// symptom checks (a): the client's own error.
type symptom func(t *testing.T, r *rig, res *Result, err error)

// tediousReset is tedious's error for an RST during the TLS handshake.
func tediousReset(t *testing.T, r *rig, res *Result, err error) {
	t.Helper()
	assertTedious(t, res, err, fmt.Sprintf("Failed to connect to 127.0.0.1:%d - read ECONNRESET", r.port), "ESOCKET", "read ECONNRESET")
	if res.Phase != "connect" {
		t.Errorf("tedious failed in %q, want connect", res.Phase)
	}
}

// tsqlReset is FreeTDS's error for an RST during the TLS handshake; GnuTLS's
// own reason is only in the TDSDUMP (the run must set Dump).
func tsqlReset(t *testing.T, r *rig, res *Result, err error) {
	t.Helper()
	assertTSQL(t, res, err, tsqlFailed, "20002")
	if !strings.Contains(res.Dump, "handshake failed: Error in the pull function.") {
		t.Errorf("TDSDUMP lacks GnuTLS's pull-function error:\n%s", lastLines(res.Dump, 15))
	}
}

// assertTSQL checks a failed tsql run: its exact stderr, first library
// error number and exit status 1.
func assertTSQL(t *testing.T, res *Result, err error, stderr, code string) {
	t.Helper()
	assertFailure(t, res, err, []string{stderr})
	if res.Error != stderr || res.Code != code || res.ExitCode != 1 {
		t.Errorf("tsql: stderr %q code %q exit %d; want %q %q exit 1", res.Error, res.Code, res.ExitCode, stderr, code)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// helloScenario is a scenario whose fault closes the connection at a TLS
// phase: 1, 2 and 4 at tls.client_hello.
type helloScenario struct {
	emu  emulator.Config
	rule faults.RuleSpec
	// broken is the client that meets the scenario's condition; fixed is
	// the client after the fix (nil: broken, when the fix is on the server
	// side and fixedRule says what the server now has).
	broken, fixed clientRun
	fixedRule     *faults.RuleSpec
	symptom       symptom
	// failed checks more of the failing connection's record.
	failed func(t *testing.T, rec *proxy.Record)
}

// run checks (a) to (d) with one rig.
func (s helloScenario) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	r := newEmuRig(t, s.emu, s.rule)

	// (a) and (b): the client fails as documented; the proxy closed with
	// RST right after the ClientHello, as the rule decided.
	res, err := s.broken(ctx, t, r)
	s.symptom(t, r, res, err)
	rec := r.next(t)
	t.Logf("fault: %s", recordSummary(rec))
	assertInjectedClose(t, rec, s.rule.Name, proxy.PhaseTLSClientHello, proxy.CloseRST)
	if rec.TLS == nil || rec.TLS.ServerHello != nil {
		t.Errorf("the server answered the ClientHello: %s", recordJSON(rec))
	}
	if s.failed != nil {
		s.failed(t, rec)
	}

	// (c): the same client through the same proxy, with the rule not
	// matching it, reaches the server and runs SELECT 1.
	for _, m := range []struct {
		name  string
		match faults.Match
	}{
		{"other client", otherClient},
		{"probability 0", faults.Match{Probability: ptr(0.0)}},
	} {
		nm := s.rule
		nm.Match = m.match
		r.setRules(t, nm)
		res, err := s.broken(ctx, t, r)
		assertSelectOne(t, res, err)
		rec := r.next(t)
		assertNotInjected(t, rec)
		if len(rec.Faults) != 0 {
			t.Errorf("%s: a rule that does not match left decisions %+v", m.name, rec.Faults)
		}
		if !rec.Reached(proxy.PhaseEstablished) {
			t.Errorf("%s: not established: %s", m.name, recordSummary(rec))
		}
	}

	// (d): after the fix the rule lets the connection through.
	fixed, rule := s.fixed, s.rule
	if fixed == nil {
		fixed = s.broken
	}
	if s.fixedRule != nil {
		rule = *s.fixedRule
	}
	r.setRules(t, rule)
	res, err = fixed(ctx, t, r)
	assertSelectOne(t, res, err)
	rec = r.next(t)
	t.Logf("fixed: %s", recordSummary(rec))
	assertNotInjected(t, rec)
	if !slices.ContainsFunc(rec.Faults, func(f proxy.FaultEvent) bool {
		return f.Rule == rule.Name && f.Action == "pass" && f.Phase == proxy.PhaseTLSClientHello
	}) {
		t.Errorf("fixed: no pass decision by %q at tls.client_hello: %+v", rule.Name, rec.Faults)
	}
}

// Clients shaped for scenario 1: offering TLS 1.0 and 1.1 only.
var (
	// tedious 19.2.2 with OpenSSL limited to TLS 1.0-1.1; @SECLEVEL=0
	// because OpenSSL 3 refuses TLS < 1.2 at its default level.
	tediousOld = TediousConfig{Encrypt: true, CryptoCredentialsDetails: &CryptoCredentials{
		MinVersion: "TLSv1", MaxVersion: "TLSv1.1", Ciphers: "DEFAULT:@SECLEVEL=0"}}
	// FreeTDS with GnuTLS's system priority stripped of TLS 1.2 and 1.3.
	tsqlOld = TSQLConfig{Encryption: "require", Dump: true, EnableTLSv1: ptr(true),
		GnuTLSOverrides: []string{"disabled-version = tls1.2", "disabled-version = tls1.3"}}
)

// TestScenarioProtocolMismatch: scenario 1, an emulated TLS 1.2-only
// server meets clients that offer at most TLS 1.1. The emulator itself
// accepts TLS 1.0, so only the rule stands between those clients and a
// session.
func TestScenarioProtocolMismatch(t *testing.T) {
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
		{ClientTedious, helloScenario{
			broken: tediousRun(tediousOld), fixed: tediousRun(TediousConfig{Encrypt: true}),
			symptom: tediousReset,
		}},
		{ClientTSQL, helloScenario{
			broken: tsqlRun(tsqlOld), fixed: tsqlRun(TSQLConfig{Encryption: "require"}),
			symptom: tsqlReset,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.s.emu, tt.s.rule, tt.s.failed = emuConfig(), rule, offersAtMost11
			tt.s.run(t)
		})
	}
}

// TestScenarioCipherMismatch: scenario 2, the emulated server allows only
// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384; the clients offer only RSA key
// exchange suites. The emulator itself has both kinds.
func TestScenarioCipherMismatch(t *testing.T) {
	t.Parallel()
	const serverSuite = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
	rule := scenarioRule(faults.ScenarioCipherMismatch, map[string]string{"server_ciphers": serverSuite})
	emu := emuConfig()
	emu.CipherSuites = []uint16{
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		// Not in Go's defaults since 1.22, allowed when listed.
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	}
	notOffered := func(t *testing.T, rec *proxy.Record) {
		t.Helper()
		if ch := rec.TLS.ClientHello; ch == nil || slices.Contains(ch.CipherSuites, serverSuite) {
			t.Errorf("ClientHello %+v offers %s", ch, serverSuite)
		}
	}
	for _, tt := range []struct {
		name string
		s    helloScenario
	}{
		{ClientTedious, helloScenario{
			// OpenSSL's AES128-GCM-SHA256 is TLS_RSA_WITH_AES_128_GCM_SHA256;
			// the hello lists it and the renegotiation SCSV, nothing else.
			broken: tediousRun(TediousConfig{Encrypt: true, CryptoCredentialsDetails: &CryptoCredentials{
				MaxVersion: "TLSv1.2", Ciphers: "AES128-GCM-SHA256"}}),
			fixed: tediousRun(TediousConfig{Encrypt: true, CryptoCredentialsDetails: &CryptoCredentials{
				MaxVersion: "TLSv1.2", Ciphers: "ECDHE-RSA-AES256-GCM-SHA384"}}),
			symptom: tediousReset,
		}},
		{ClientTSQL, helloScenario{
			// GnuTLS without ECDHE and DHE key exchange (and without
			// TLS 1.3, whose suites carry no key exchange): RSA suites only.
			broken: tsqlRun(TSQLConfig{Encryption: "require", Dump: true, GnuTLSOverrides: []string{
				"disabled-version = tls1.3", "tls-disabled-kx = ECDHE-RSA", "tls-disabled-kx = ECDHE-ECDSA", "tls-disabled-kx = DHE-RSA"}}),
			fixed:   tsqlRun(TSQLConfig{Encryption: "require"}),
			symptom: tsqlReset,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.s.emu, tt.s.rule, tt.s.failed = emu, rule, notOffered
			tt.s.run(t)
		})
	}
}

// TestScenarioWeakCertHash: scenario 4. The rule emulates a server whose
// certificate is signed with a hash the client's signature_algorithms may
// not list. What the clients list (ClientHello, TLS 1.2 / 1.3 hello):
//
//	tedious (OpenSSL 3.0, Node defaults): ecdsa_secp256r1_sha256,
//	  ecdsa_secp384r1_sha384, ecdsa_secp521r1_sha512, ed25519, ed448,
//	  rsa_pss_pss_sha256/384/512, rsa_pss_rsae_sha256/384/512,
//	  rsa_pkcs1_sha256/384/512, ecdsa_sha224, rsa_pkcs1_sha224,
//	  dsa_sha224/256/384/512 — no MD5 and no SHA-1 (OpenSSL 3 drops SHA-1
//	  signatures at security level 1), but SHA-224;
//	tsql (GnuTLS 3.7 system priority): rsa_pkcs1_sha256, rsa_pss_pss_sha256,
//	  rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256, ed25519, the same for
//	  384/448 and 512, rsa_pkcs1_sha1, ecdsa_sha1 — no MD5 and no SHA-224,
//	  but SHA-1.
//
// Neither sends signature_algorithms_cert. So md5 closes both, sha1 only
// tedious, sha224 only tsql, sha512 neither.
func TestScenarioWeakCertHash(t *testing.T) {
	t.Parallel()
	rule := scenarioRule(faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "md5"})
	// The fix: re-issue the certificate with SHA-256.
	fixedRule := scenarioRule(faults.ScenarioWeakCertHash, map[string]string{"cert_hash": "sha256"})
	noMD5 := func(t *testing.T, rec *proxy.Record) {
		t.Helper()
		ch := rec.TLS.ClientHello
		if ch == nil || len(ch.SignatureAlgorithms) == 0 || slices.Contains(ch.SignatureAlgorithms, "rsa_pkcs1_md5") || slices.Contains(ch.SignatureAlgorithmsCert, "rsa_pkcs1_md5") {
			t.Errorf("ClientHello %+v: want signature_algorithms without rsa_pkcs1_md5", ch)
		}
	}
	for _, tt := range []struct {
		name   string
		client clientRun
		fail   symptom
		// closes says, per other weak hash, whether the rule closes.
		closes map[string]bool
	}{
		{ClientTedious, tediousRun(TediousConfig{Encrypt: true}), tediousReset,
			map[string]bool{"sha1": true, "sha224": false, "sha512": false}},
		{ClientTSQL, tsqlRun(TSQLConfig{Encryption: "require", Dump: true}), tsqlReset,
			map[string]bool{"sha1": false, "sha224": true, "sha512": false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			helloScenario{emu: emuConfig(), rule: rule, broken: tt.client, fixedRule: &fixedRule,
				symptom: tt.fail, failed: noMD5}.run(t)
		})
		t.Run(tt.name+"/other hashes", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			r := newEmuRig(t, emuConfig())
			for _, h := range []string{"sha1", "sha224", "sha512"} {
				rule := scenarioRule(faults.ScenarioWeakCertHash, map[string]string{"cert_hash": h})
				r.setRules(t, rule)
				res, err := tt.client(ctx, t, r)
				if err != nil {
					t.Fatalf("%s: run: %v", h, err)
				}
				rec := r.next(t)
				// The rule's decision must follow the client's real list.
				var listed bool
				if ch := rec.TLS.ClientHello; ch != nil {
					listed = slices.Contains(ch.SignatureAlgorithms, "rsa_pkcs1_"+h)
				}
				if listed == tt.closes[h] {
					t.Errorf("%s: client lists rsa_pkcs1_%s = %v, but the test expects close = %v", h, h, listed, tt.closes[h])
				}
				if tt.closes[h] {
					tt.fail(t, r, res, nil)
					assertInjectedClose(t, rec, rule.Name, proxy.PhaseTLSClientHello, proxy.CloseRST)
				} else {
					assertSelectOne(t, res, nil)
					assertNotInjected(t, rec)
				}
			}
		})
	}

	// A real MD5-signed certificate on the emulator, no rule: the record
	// shows it (TLS 1.2 sends the certificate in the clear) and flags the
	// risk; diagnosis names the scenario. Neither client refuses it:
	// tedious does not verify with trustServerCertificate, FreeTDS does not
	// verify without `ca file`; it is Schannel on the server that fails.
	t.Run("real MD5 certificate", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		defer cancel()
		cert, _, _, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{Hash: "md5"})
		if err != nil {
			t.Fatalf("GenerateCertificate: %v", err)
		}
		cfg := emuConfig()
		cfg.Certificate = &cert
		r := newEmuRig(t, cfg)
		for _, run := range []clientRun{tediousRun(TediousConfig{Encrypt: true}), tsqlRun(TSQLConfig{Encryption: "require"})} {
			res, err := run(ctx, t, r)
			assertSelectOne(t, res, err)
			rec := r.next(t)
			if rec.TLS == nil || rec.TLS.Version != "TLS 1.2" || len(rec.TLS.Certificates) != 1 {
				t.Fatalf("%s: want a TLS 1.2 session with one certificate: %s", res.Client, recordJSON(rec))
			}
			if c := rec.TLS.Certificates[0]; c.SignatureAlgorithm != "MD5-RSA" || c.SignatureHash != "md5" || !c.WeakHashRisk {
				t.Errorf("%s: certificate %+v: want MD5-RSA, md5, weak hash risk", res.Client, c)
			}
			if !slices.ContainsFunc(faults.Diagnose(rec), func(f faults.Finding) bool { return f.Scenario == faults.ScenarioWeakCertHash }) {
				t.Errorf("%s: diagnosis %+v does not name %s", res.Client, faults.Diagnose(rec), faults.ScenarioWeakCertHash)
			}
		}
	})
}

// TestScenarioDHE: scenarios 3 (dhe-enabled) and 5 (dhe-leading-zero).
// Go's crypto/tls, and so the emulator, cannot do DHE (docs/protocol.md), so the
// upstream is `openssl s_server` offering only DHE-RSA-AES128-GCM-SHA256
// with ffdhe2048, in TDS 8.0 strict form (TLS first, ALPN tds/8.0), and the
// client is tedious with encrypt 'strict', TLS 1.2 and that suite only.
// FreeTDS 1.3 cannot do strict, and inside PRELOGIN its upstream would have
// to be the emulator, which has no DHE: FreeTDS is not applicable here.
// s_server is not TDS: a handshake the rule lets through ends in tedious's
// connect timeout on the PRELOGIN it then sends inside TLS.
// dhe-leading-zero's natural rate (1/256) is the faults unit tests' job;
// here both scenarios run with rate "always".
func TestScenarioDHE(t *testing.T) {
	t.Parallel()
	dheClient := func(srv *opensslServer) TediousConfig {
		// 2 s: room for the handshake on a loaded machine before the
		// timeout a handshake the rule lets through ends in.
		return TediousConfig{Encrypt: "strict", ConnectTimeout: 2000, CryptoCredentialsDetails: &CryptoCredentials{
			MaxVersion: "TLSv1.2", Ciphers: "DHE-RSA-AES128-GCM-SHA256", CA: string(srv.certPEM)}}
	}
	dheRecord := func(t *testing.T, rec *proxy.Record) {
		t.Helper()
		if rec.Protocol != "tds8-strict" || rec.TLS == nil || rec.TLS.Version != "TLS 1.2" ||
			rec.TLS.CipherSuite != "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" ||
			rec.TLS.KeyExchange == nil || rec.TLS.KeyExchange.Kind != "DHE" || rec.TLS.KeyExchange.DHPrimeBits != 2048 {
			t.Errorf("want strict TLS 1.2 with TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 and a 2048-bit prime: %s", recordJSON(rec))
		}
	}
	for _, name := range []string{faults.ScenarioDHEEnabled, faults.ScenarioDHELeadingZero} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			srv := startOpenSSLDHE(t)
			rule := scenarioRule(name, map[string]string{"rate": "always"})
			r := newRig(t, srv.addr, rule)

			// (a), (b): reset right after the client's
			// ClientKeyExchange/ChangeCipherSpec/Finished flight.
			res, err := r.tedious(ctx, t, dheClient(srv))
			tediousReset(t, r, res, err)
			rec := r.next(t)
			t.Logf("fault: %s", recordSummary(rec))
			dheRecord(t, rec)
			assertInjectedClose(t, rec, rule.Name, proxy.PhaseTLSClientFinished, proxy.CloseRST)
			if !slices.ContainsFunc(rec.Faults, func(f proxy.FaultEvent) bool {
				return f.Rule == rule.Name && f.Phase == proxy.PhaseTLSServerHello && f.Action == "armed"
			}) {
				t.Errorf("no armed decision at tls.server_hello: %+v", rec.Faults)
			}
			if rec.Reached(proxy.PhaseTLSServerFinished) {
				t.Errorf("the server's Finished got through: %s", recordSummary(rec))
			}

			// (c): rate 0, and a rule for another client: the handshake
			// completes (and tedious then times out on s_server).
			for _, nm := range []faults.RuleSpec{
				scenarioRule(name, map[string]string{"rate": "0"}),
				{Name: rule.Name, Scenario: name, Options: rule.Options, Match: otherClient},
			} {
				r.setRules(t, nm)
				res, err := r.tedious(ctx, t, dheClient(srv))
				assertTedious(t, res, err, fmt.Sprintf("Failed to connect to 127.0.0.1:%d in 2000ms", r.port), "ETIMEOUT", "")
				rec := r.next(t)
				t.Logf("not hit: %s", recordSummary(rec))
				dheRecord(t, rec)
				assertNotInjected(t, rec)
				if !rec.Reached(proxy.PhaseTLSServerFinished) {
					t.Errorf("handshake did not complete: %s", recordSummary(rec))
				}
				if nm.Match.Clients == nil && !slices.ContainsFunc(rec.Faults, func(f proxy.FaultEvent) bool {
					return f.Phase == proxy.PhaseTLSClientFinished && f.Action == "pass"
				}) {
					t.Errorf("rate 0: no pass decision at tls.client_finished: %+v", rec.Faults)
				}
			}
		})
	}

	// (d): the fix is a cipher policy without DHE. The same tedious (strict,
	// TLS 1.2) with OpenSSL's default suites against the emulator, which
	// chooses ECDHE: the rule, still set to "always", lets it through.
	t.Run("fixed", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
		defer cancel()
		rule := scenarioRule(faults.ScenarioDHEEnabled, map[string]string{"rate": "always"})
		r := newEmuRig(t, emulator.Config{Encrypt: tds.EncryptOn}, rule)
		res, err := r.tedious(ctx, t, TediousConfig{Encrypt: "strict", CryptoCredentialsDetails: &CryptoCredentials{
			MaxVersion: "TLSv1.2", CA: string(r.emu.CertificatePEM())}})
		assertSelectOne(t, res, err)
		rec := r.next(t)
		t.Logf("fixed: %s", recordSummary(rec))
		assertNotInjected(t, rec)
		if rec.TLS == nil || tlsbridge.SuiteKeyExchange(suiteID(rec.TLS.CipherSuite)) == "DHE" {
			t.Errorf("negotiated %+v, want a non-DHE suite", rec.TLS)
		}
		if !slices.ContainsFunc(rec.Faults, func(f proxy.FaultEvent) bool {
			return f.Rule == rule.Name && f.Phase == proxy.PhaseTLSServerHello && f.Action == "pass"
		}) {
			t.Errorf("no pass decision at tls.server_hello: %+v", rec.Faults)
		}
	})
}

// suiteID is the IANA number of a suite name (0 when unknown).
func suiteID(name string) uint16 {
	id, _ := tlsbridge.CipherSuiteByName(name)
	return id
}

// TestScenarioDelayedAccept: scenario 6 in the forms a client meets as a
// login timeout (accept held, PRELOGIN response held, login response held:
// 3 s against a 1 s client timeout) and as an immediate reset (reject).
// The full-backlog form (unanswered SYNs) is the proxy's AcceptGate tests'
// job: it depends on the kernel's SYN handling, not on the client.
//
// FreeTDS: `connect timeout` bounds the whole login, because tds_connect
// sets the query timeout to it while logging in (login.c: "Jeff's hack");
// `timeout` does the same only when `connect timeout` is unset.
func TestScenarioDelayedAccept(t *testing.T) {
	t.Parallel()
	tediousTimedOut := func(t *testing.T, r *rig, res *Result, err error) {
		t.Helper()
		assertTedious(t, res, err, fmt.Sprintf("Failed to connect to 127.0.0.1:%d in 1000ms", r.port), "ETIMEOUT", "")
	}
	tsqlTimedOut := func(t *testing.T, r *rig, res *Result, err error) {
		t.Helper()
		assertFailure(t, res, err, []string{"Error 20003 (severity 6):\n\tAdaptive Server connection timed out\n", "Error 20002 (severity 9):\n\tAdaptive Server connection failed\n"})
		if res.Code != "20003" {
			t.Errorf("tsql code %q, want 20003", res.Code)
		}
	}
	clients := []struct {
		name string
		// short has a 1 s login timeout; mid 2 s, still below the delay
		// but with room for a loaded machine; long 5 s, above it.
		short, mid, long clientRun
		timedOut, reset  symptom
	}{
		{ClientTedious,
			tediousRun(TediousConfig{Encrypt: true, ConnectTimeout: 1000}),
			tediousRun(TediousConfig{Encrypt: true, ConnectTimeout: 2000}),
			tediousRun(TediousConfig{Encrypt: true, ConnectTimeout: 5000}),
			tediousTimedOut,
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertFailure(t, res, err, nil)
				prefix := fmt.Sprintf("Failed to connect to 127.0.0.1:%d - ", r.port)
				forms := []string{
					prefix + "Could not connect (sequence)", // connect(2) saw the RST
					prefix + "read ECONNRESET",              // connect won the race
					// The RST arrived after connect(2) completed but before
					// tedious wrote its PRELOGIN: tedious had already left
					// its connecting state, so it reports a lost connection.
					"Connection lost - write ECONNRESET",
				}
				if !slices.Contains(forms, res.Error) || res.Code != "ESOCKET" || !strings.Contains(res.Cause, "ECONNRESET") {
					t.Errorf("tedious: error %q code %q cause %q; want one of %q, ESOCKET, an ECONNRESET cause", res.Error, res.Code, res.Cause, forms)
				}
			}},
		{ClientTSQL,
			tsqlRun(TSQLConfig{Encryption: "require", Conf: []string{"connect timeout = 1"}}),
			tsqlRun(TSQLConfig{Encryption: "require", Conf: []string{"connect timeout = 2"}}),
			tsqlRun(TSQLConfig{Encryption: "require", Conf: []string{"connect timeout = 5"}}),
			tsqlTimedOut,
			func(t *testing.T, r *rig, res *Result, err error) {
				t.Helper()
				assertFailure(t, res, err, nil)
				refused := "Error 20009 (severity 9):\n\tUnable to connect: Adaptive Server is unavailable or does not exist\n" +
					"\tOS error 104, \"Connection reset by peer\"\nThere was a problem connecting to the server"
				if res.Error != refused && res.Error != tsqlFailed {
					t.Errorf("tsql: stderr %q; want %q or %q", res.Error, refused, tsqlFailed)
				}
			}},
	}
	forms := []struct {
		name string
		opts map[string]string
		// phase is where the rule acts.
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

				// (a), (b).
				res, err := c.short(ctx, t, r)
				rec := r.next(t)
				t.Logf("fault: %s; diagnosis %+v", recordSummary(rec), faults.Diagnose(rec))
				if f.reject {
					c.reset(t, r, res, err)
					assertInjectedClose(t, rec, rule.Name, proxy.PhaseAccept, proxy.CloseRST)
					if len(rec.Phases) != 2 || rec.Reached(proxy.PhasePreloginRequest) {
						t.Errorf("want accept then close, nothing read: %s", recordSummary(rec))
					}
				} else {
					c.timedOut(t, r, res, err)
					assertDelayed(t, rec, rule.Name, f.phase)
					// The client gave up and closed. (Close.Phase and
					// Awaiting are not asserted: the proxy marks a held
					// phase as reached when its bytes arrive, not when they
					// are forwarded, so the record shows the phase after the
					// one the client waited for, and Awaiting "client" or
					// nothing.)
					if cl := rec.Close; cl == nil || cl.By != proxy.SideClient || cl.Kind != proxy.CloseFIN && cl.Kind != proxy.CloseRST {
						t.Errorf("close %+v: want the client's close", cl)
					}
				}

				// (c): a client whose timeout is below the delay, rule not
				// matching it.
				r.setRules(t, faults.RuleSpec{Name: rule.Name, Scenario: rule.Scenario, Options: rule.Options, Match: otherClient})
				res, err = c.mid(ctx, t, r)
				assertSelectOne(t, res, err)
				rec = r.next(t)
				if len(rec.Faults) != 0 {
					t.Errorf("a rule that does not match left decisions %+v", rec.Faults)
				}

				// (d): a login timeout longer than the delay. Reject has no
				// client-side fix (the server must have capacity): (c)
				// stands for it.
				if f.reject {
					return
				}
				r.setRules(t, rule)
				res, err = c.long(ctx, t, r)
				assertSelectOne(t, res, err)
				rec = r.next(t)
				assertDelayed(t, rec, rule.Name, f.phase)
			})
		}
	}
}

// assertDelayed checks that the rule held the connection at phase.
func assertDelayed(t *testing.T, rec *proxy.Record, rule string, phase proxy.Phase) {
	t.Helper()
	if !slices.ContainsFunc(rec.Faults, func(f proxy.FaultEvent) bool {
		return f.Rule == rule && f.Phase == phase && f.Action == "delay"
	}) {
		t.Errorf("no delay by %q at %s: %+v", rule, phase, rec.Faults)
	}
}

// TestScenarioCloseStyles: the same decision (scenario 1 at
// tls.client_hello) closing with FIN and with a TLS alert instead of RST;
// each client reports the close its own way.
func TestScenarioCloseStyles(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		close  string
		kind   proxy.CloseKind
		client clientRun
		check  symptom
	}{
		{"fin/" + ClientTedious, "fin", proxy.CloseFIN, tediousRun(tediousOld), func(t *testing.T, r *rig, res *Result, err error) {
			t.Helper()
			assertTedious(t, res, err, fmt.Sprintf("Failed to connect to 127.0.0.1:%d - socket hang up", r.port), "ESOCKET", "socket hang up")
		}},
		{"fin/" + ClientTSQL, "fin", proxy.CloseFIN, tsqlRun(tsqlOld), func(t *testing.T, r *rig, res *Result, err error) {
			t.Helper()
			assertTSQL(t, res, err, "Error 20017 (severity 9):\n\tUnexpected EOF from the server\n"+tsqlFailed, "20017")
		}},
		{"alert/" + ClientTedious, "alert:handshake_failure", proxy.CloseAlert, tediousRun(tediousOld), func(t *testing.T, r *rig, res *Result, err error) {
			t.Helper()
			// OpenSSL's error-queue line starts with a thread id and
			// names its source file: match the stable parts.
			assertFailure(t, res, err, []string{
				fmt.Sprintf("Failed to connect to 127.0.0.1:%d - ", r.port),
				":error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:",
				":SSL alert number 40",
			})
			if res.Code != "ESOCKET" {
				t.Errorf("tedious code %q, want ESOCKET", res.Code)
			}
		}},
		{"alert/" + ClientTSQL, "alert:handshake_failure", proxy.CloseAlert, tsqlRun(tsqlOld), func(t *testing.T, r *rig, res *Result, err error) {
			t.Helper()
			assertTSQL(t, res, err, tsqlFailed, "20002")
			for _, w := range []string{"Alert[2|40] - Handshake failed - was received", "handshake failed: A TLS fatal alert has been received."} {
				if !strings.Contains(res.Dump, w) {
					t.Errorf("TDSDUMP lacks %q:\n%s", w, lastLines(res.Dump, 15))
				}
			}
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
			tt.check(t, r, res, err)
			rec := r.next(t)
			assertInjectedClose(t, rec, rule.Name, proxy.PhaseTLSClientHello, tt.kind)
		})
	}
}

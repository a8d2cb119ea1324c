package probe

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// The crafted hello says what it is meant to say: one version, exactly
// the suites given, and the strict ALPN.
func TestMarshalHelloRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec helloSpec
		want []uint16 // OfferedVersions
	}{
		{"TLS 1.0 only", helloSpec{Versions: []uint16{tlsbridge.VersionTLS10}, Suites: []uint16{0xC013}}, []uint16{tlsbridge.VersionTLS10}},
		{"TLS 1.2 only", helloSpec{Versions: []uint16{tlsbridge.VersionTLS12}, Suites: []uint16{0xC02F, 0x009E}, SigAlgs: []uint16{0x0101}}, []uint16{tlsbridge.VersionTLS12}},
		{"TLS 1.3 only strict", helloSpec{Versions: []uint16{tlsbridge.VersionTLS13}, Suites: []uint16{0x1301}, ALPN: "tds/8.0", ServerName: "sql01"}, []uint16{tlsbridge.VersionTLS13}},
		{"TLS 1.2 and 1.3", helloSpec{Versions: []uint16{tlsbridge.VersionTLS12, tlsbridge.VersionTLS13}, Suites: []uint16{0x1301, 0xC02F}}, []uint16{tlsbridge.VersionTLS13, tlsbridge.VersionTLS12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := marshalHello(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if rec[0] != 0x16 {
				t.Fatalf("record type 0x%02X, want handshake", rec[0])
			}
			ch, err := tlsbridge.ParseClientHello(rec[tlsbridge.RecordHeaderLen:])
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if got := ch.OfferedVersions(); !slices.Equal(got, tc.want) {
				t.Errorf("offered versions %v, want %v", versionNames(got), versionNames(tc.want))
			}
			suites := slices.DeleteFunc(slices.Clone(ch.CipherSuites), func(s uint16) bool { return s == 0x00FF })
			if !slices.Equal(suites, tc.spec.Suites) {
				t.Errorf("suites %v, want %v", suiteNames(suites), suiteNames(tc.spec.Suites))
			}
			if tc.spec.ALPN != "" && !slices.Equal(ch.ALPN, []string{tc.spec.ALPN}) {
				t.Errorf("ALPN %v, want %s", ch.ALPN, tc.spec.ALPN)
			}
			if tc.spec.SigAlgs != nil && !slices.Equal(ch.SignatureAlgorithms, tc.spec.SigAlgs) {
				t.Errorf("signature_algorithms %v, want %v", ch.SignatureAlgorithms, tc.spec.SigAlgs)
			}
			if ch.ServerName != tc.spec.ServerName {
				t.Errorf("SNI %q, want %q", ch.ServerName, tc.spec.ServerName)
			}
		})
	}
}

// Every suite a profile names is an IANA name tlsbridge knows.
func TestProfilesResolve(t *testing.T) {
	for _, p := range profiles {
		if got := len(p.suiteIDs()); got != len(p.suites) {
			for _, n := range p.suites {
				if _, ok := tlsbridge.CipherSuiteByName(n); !ok {
					t.Errorf("profile %s: %q is not a cipher suite name", p.name, n)
				}
			}
		}
	}
}

// Versions: the emulator limited to TLS 1.0, to TLS 1.2, and open from
// 1.0 to 1.2 (1.3 in strict, as SQL Server 2022).
func TestProbeVersions(t *testing.T) {
	for _, tc := range []struct {
		name           string
		min, max       uint16
		want, wantStr  []string
		protocolStatus string
		failing        string // a profile failed by protocol-mismatch
		connecting     string // a profile that connects
	}{
		{"TLS 1.0 only", tls.VersionTLS10, tls.VersionTLS10, []string{"TLS 1.0"}, []string{"TLS 1.0"}, StatusRisk, "go-mssqldb", "netfx-tls10"},
		{"TLS 1.2 only", tls.VersionTLS12, tls.VersionTLS12, []string{"TLS 1.2"}, []string{"TLS 1.2"}, StatusRisk, "netfx-tls10", "go-mssqldb"},
		{"TLS 1.0 to 1.2", tls.VersionTLS10, 0, []string{"TLS 1.0", "TLS 1.1", "TLS 1.2"}, []string{"TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}, StatusOK, "", "netfx-tls10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := probeEmu(t, emulator.Config{TLSMin: tc.min, TLSMax: tc.max}, nil)
			if !slices.Equal(r.Versions, tc.want) {
				t.Errorf("versions %v, want %v (answers %v)", r.Versions, tc.want, r.VersionAnswers)
			}
			if !slices.Equal(r.Strict.Versions, tc.wantStr) || !r.Strict.Supported {
				t.Errorf("strict %+v, want versions %v", r.Strict, tc.wantStr)
			}
			for _, v := range tc.want {
				if len(r.CipherSuites[v]) == 0 {
					t.Errorf("no cipher suites enumerated for %s", v)
				}
			}
			v := verdictOf(t, r, faults.ScenarioProtocolMismatch)
			if v.Status != tc.protocolStatus {
				t.Errorf("protocol-mismatch %s (%s), want %s", v.Status, v.Why, tc.protocolStatus)
			}
			if tc.failing != "" {
				p := profileOf(t, r, tc.failing)
				if p.Connects || p.Scenario != faults.ScenarioProtocolMismatch {
					t.Errorf("profile %s: %+v, want a protocol-mismatch failure", tc.failing, p)
				}
				if !strings.Contains(v.Why, "alert protocol_version") || !strings.Contains(v.Why, tc.failing) {
					t.Errorf("protocol-mismatch why %q: want the alert and the profile %s", v.Why, tc.failing)
				}
			}
			if p := profileOf(t, r, tc.connecting); !p.Connects || !slices.Contains(tc.want, p.Version) {
				t.Errorf("profile %s: %+v, want it to connect", tc.connecting, p)
			}
			if r.Prelogin.Version != "16.0.1000.0" || r.Prelogin.Encryption != "OFF" || r.Prelogin.Via != "tds7" {
				t.Errorf("prelogin %+v", r.Prelogin)
			}
			if got := verdictOf(t, r, faults.ScenarioDelayedAccept); got.Status != StatusOK {
				t.Errorf("delayed-accept on a prompt emulator: %+v", got)
			}
			if got := verdictOf(t, r, faults.ScenarioDHEEnabled); got.Status != StatusOK {
				t.Errorf("dhe-enabled on Go's TLS (no DHE): %+v", got)
			}
			if len(r.Verdicts) != len(faults.Scenarios()) {
				t.Errorf("%d verdicts for %d scenarios", len(r.Verdicts), len(faults.Scenarios()))
			}
		})
	}
}

// TLS 1.3 only, inside PRELOGIN: the certificate is encrypted, so the
// probe completes one handshake with crypto/tls to read it.
func TestProbeTLS13Certificate(t *testing.T) {
	cert, _, _ := testCert(t, tlsbridge.CertOptions{Hash: "sha384"})
	r := probeEmu(t, emulator.Config{TLSMin: tls.VersionTLS13, TLSMax: tls.VersionTLS13, Certificate: &cert}, nil)
	if !slices.Equal(r.Versions, []string{"TLS 1.3"}) || len(r.CipherSuites["TLS 1.3"]) == 0 {
		t.Errorf("versions %v suites %v", r.Versions, r.CipherSuites)
	}
	if len(r.Certificates) != 1 || r.Certificates[0].SignatureAlgorithm != "SHA384-RSA" {
		t.Errorf("certificates %+v, want the SHA384-RSA leaf", r.Certificates)
	}
	if r.KeyExchange["TLS_AES_128_GCM_SHA256"] != "TLS13" {
		t.Errorf("key exchange %v", r.KeyExchange)
	}
}

// A restricted suite list is enumerated exactly, in the server's order
// (Go's server orders the configured suites by its own preference, which
// for these is the order written here).
func TestProbeRestrictedSuites(t *testing.T) {
	for _, tc := range []struct {
		name         string
		suites       []string
		order        string
		cipherStatus string
	}{
		{"three suites", []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}, "server", StatusOK},
		// Windows 2012 R2 has no ChaCha20 and no ECDHE_RSA with GCM.
		{"ChaCha20 only", []string{"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}, "unknown", StatusRisk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids []uint16
			for _, n := range tc.suites {
				id, _ := tlsbridge.CipherSuiteByName(n)
				ids = append(ids, id)
			}
			r := probeEmu(t, emulator.Config{TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12, CipherSuites: ids}, nil)
			if got := r.CipherSuites["TLS 1.2"]; !slices.Equal(got, tc.suites) {
				t.Errorf("cipher_suites[TLS 1.2] = %v, want %v", got, tc.suites)
			}
			if r.CipherOrder["TLS 1.2"] != tc.order {
				t.Errorf("cipher order %q, want %q", r.CipherOrder["TLS 1.2"], tc.order)
			}
			for _, s := range tc.suites {
				if r.KeyExchange[s] != "ECDHE" {
					t.Errorf("key exchange of %s: %q", s, r.KeyExchange[s])
				}
			}
			v := verdictOf(t, r, faults.ScenarioCipherMismatch)
			if v.Status != tc.cipherStatus {
				t.Errorf("cipher-mismatch %s (%s), want %s", v.Status, v.Why, tc.cipherStatus)
			}
			if tc.cipherStatus == StatusRisk {
				p := profileOf(t, r, "win2012r2")
				if p.Connects || p.Scenario != faults.ScenarioCipherMismatch || !strings.Contains(v.Why, "win2012r2") {
					t.Errorf("win2012r2 %+v / verdict %q: want a cipher-mismatch failure named", p, v.Why)
				}
			}
		})
	}
}

// Certificates signed with each weak hash are named, with SQL Server's
// thumbprint, and give weak-cert-hash risk; SHA-256 gives ok.
func TestProbeCertificateHashes(t *testing.T) {
	for _, tc := range []struct {
		hash, alg, must, status string
	}{
		{"md5", "MD5-RSA", "rsa_pkcs1_md5", StatusRisk},
		{"sha1", "SHA1-RSA", "rsa_pkcs1_sha1", StatusRisk},
		{"sha224", "SHA224-RSA", "rsa_pkcs1_sha224", StatusRisk},
		{"sha512", "SHA512-RSA", "rsa_pkcs1_sha512", StatusRisk},
		{"sha256", "SHA256-RSA", "rsa_pkcs1_sha256", StatusOK},
	} {
		t.Run(tc.hash, func(t *testing.T) {
			cert, _, _ := testCert(t, tlsbridge.CertOptions{Hash: tc.hash})
			r := probeEmu(t, emulator.Config{Certificate: &cert}, nil)
			if len(r.Certificates) != 1 {
				t.Fatalf("certificates %+v, want one", r.Certificates)
			}
			c := r.Certificates[0]
			sum := sha1.Sum(cert.Certificate[0])
			if want := strings.ToUpper(hex.EncodeToString(sum[:])); c.ThumbprintSHA1 != want {
				t.Errorf("thumbprint %s, want %s", c.ThumbprintSHA1, want)
			}
			if c.SignatureAlgorithm != tc.alg || c.KeyType != "RSA" || c.KeyBits != 1024 || c.HostNameMatch == nil || !*c.HostNameMatch {
				t.Errorf("certificate %+v: want %s, RSA-1024, host name match", c, tc.alg)
			}
			if !slices.Equal(r.SignatureAlgs.ClientMustList, []string{tc.must}) {
				t.Errorf("client_must_list %v, want [%s]", r.SignatureAlgs.ClientMustList, tc.must)
			}
			v := verdictOf(t, r, faults.ScenarioWeakCertHash)
			if v.Status != tc.status || (tc.status == StatusRisk && !strings.Contains(v.Why, c.ThumbprintSHA1)) {
				t.Errorf("weak-cert-hash %s (%s), want %s naming the thumbprint", v.Status, v.Why, tc.status)
			}
			if tc.hash == "md5" {
				// Go (go-mssqldb) never lists MD5: a Schannel server would close.
				if p := profileOf(t, r, "go-mssqldb"); p.Scenario != faults.ScenarioWeakCertHash {
					t.Errorf("go-mssqldb against an MD5 certificate: %+v", p)
				}
			}
		})
	}
}

// Validity and host name: an expired certificate, one expiring within 30
// days, and one for another host name.
func TestProbeCertificateValidity(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name                  string
		opts                  tlsbridge.CertOptions
		expired, soon, hostOK bool
	}{
		{"expired", tlsbridge.CertOptions{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, true, false, true},
		{"expiring", tlsbridge.CertOptions{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)}, false, true, true},
		{"other host", tlsbridge.CertOptions{CommonName: "sql01.example.com", DNSNames: []string{"sql01.example.com"}}, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, _, _ := testCert(t, tc.opts)
			r := probeEmu(t, emulator.Config{Certificate: &cert}, nil)
			if len(r.Certificates) != 1 {
				t.Fatalf("certificates %+v", r.Certificates)
			}
			c := r.Certificates[0]
			if c.Expired != tc.expired || c.ExpiresSoon != tc.soon || c.HostNameMatch == nil || *c.HostNameMatch != tc.hostOK {
				t.Errorf("certificate %+v: want expired %v, expiring %v, host match %v", c, tc.expired, tc.soon, tc.hostOK)
			}
			if want := cert.Leaf.NotAfter.UTC().Format(time.RFC3339); c.NotAfter != want {
				t.Errorf("not_after %s, want %s", c.NotAfter, want)
			}
		})
	}
}

// Strict on (the emulator takes TDS 8.0 whatever its setting) and off (a
// front that closes connections starting with a TLS record).
func TestProbeStrict(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		r := probeEmu(t, emulator.Config{Encrypt: tds.EncryptOn}, func(c *Config) { c.Instance = "MSSQLSERVER" })
		if r.Prelogin.Instance != "ok" {
			t.Errorf("instance answer %q, want ok (INSTOPT 0x00)", r.Prelogin.Instance)
		}
		if !r.Strict.Supported || r.Strict.ALPN != "tds/8.0" || !slices.Equal(r.Strict.Versions, []string{"TLS 1.2", "TLS 1.3"}) {
			t.Errorf("strict %+v", r.Strict)
		}
		if !r.Prelogin.ForcesEncryption || r.Prelogin.Answers["OFF"] != "REQ" {
			t.Errorf("prelogin %+v: want forced encryption (REQ to OFF)", r.Prelogin)
		}
	})
	t.Run("off", func(t *testing.T) {
		emu := startEmu(t, emulator.Config{})
		r := probeTarget(t, front(t, emu.Addr(), 0, true), nil)
		if r.Strict.Supported || len(r.Strict.Versions) != 0 {
			t.Errorf("strict %+v, want unsupported", r.Strict)
		}
		if a := r.Strict.Answers["TLS 1.2"]; !strings.Contains(a, "closed without an alert") {
			t.Errorf("strict TLS 1.2 answer %q, want a close without an alert", a)
		}
		if !slices.Equal(r.Versions, []string{"TLS 1.2"}) {
			t.Errorf("versions %v", r.Versions)
		}
	})
}

// A server with encryption NOT_SUP has no TLS inside PRELOGIN; the TLS
// findings come from strict mode (the emulator takes TDS 8.0 anyway).
func TestProbeNoEncryption(t *testing.T) {
	r := probeEmu(t, emulator.Config{Encrypt: tds.EncryptNotSup}, nil)
	if r.Prelogin.Encryption != "NOT_SUP" || len(r.Versions) != 0 || len(r.CipherSuites) != 0 {
		t.Errorf("prelogin %+v versions %v suites %v: want NOT_SUP and nothing inside PRELOGIN", r.Prelogin, r.Versions, r.CipherSuites)
	}
	if a := r.VersionAnswers["TLS 1.2"]; a != "PRELOGIN refused encryption" {
		t.Errorf("TLS 1.2 inside PRELOGIN: %q", a)
	}
	if len(r.Strict.CipherSuites["TLS 1.2"]) == 0 || len(r.Certificates) != 1 {
		t.Errorf("strict suites %v, certificates %d: want the strict findings", r.Strict.CipherSuites, len(r.Certificates))
	}
	// The profiles go in strict form instead.
	if p := profileOf(t, r, "go-mssqldb"); !p.Connects {
		t.Errorf("go-mssqldb in strict form: %+v", p)
	}
	if v := verdictOf(t, r, faults.ScenarioCipherMismatch); v.Status != StatusOK {
		t.Errorf("cipher-mismatch %+v", v)
	}
	if len(r.Notes) == 0 {
		t.Errorf("no note says the findings come from strict mode")
	}
}

// A server whose accepts come late: every PRELOGIN round trip includes
// the delay, and delayed-accept is a risk.
func TestProbeAcceptDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	emu := startEmu(t, emulator.Config{})
	r := probeTarget(t, front(t, emu.Addr(), delay, false), func(c *Config) { c.SlowThreshold = 100 * time.Millisecond; c.Concurrency = 8 })
	if len(r.Timing.PreloginMS) != 2 {
		t.Fatalf("timing %+v, want 2 samples", r.Timing)
	}
	for _, x := range r.Timing.PreloginMS {
		if x < float64(delay/time.Millisecond) {
			t.Errorf("PRELOGIN round trip %.1f ms, below the %v accept delay", x, delay)
		}
	}
	v := verdictOf(t, r, faults.ScenarioDelayedAccept)
	if v.Status != StatusRisk || !strings.Contains(v.Why, "PRELOGIN round trip") {
		t.Errorf("delayed-accept %+v, want risk with the numbers", v)
	}
}

// openssl s_server in TDS 8.0 form (TLS first) with DHE only: no
// PRELOGIN at all, so the findings are TLS only, enumerated in strict.
func TestProbeOpenSSLDHE(t *testing.T) {
	addr := startOpenSSL(t, "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256")
	r := probeTarget(t, addr, func(c *Config) { c.Concurrency = 2 })
	if r.Prelogin.Via != "none" || !r.Strict.Supported || !slices.Equal(r.Strict.Versions, []string{"TLS 1.2"}) || r.Strict.ALPN != "tds/8.0" {
		t.Errorf("prelogin %+v strict %+v: want TLS-first only, TLS 1.2", r.Prelogin, r.Strict)
	}
	got := slices.Clone(r.Strict.CipherSuites["TLS 1.2"])
	slices.Sort(got)
	want := []string{"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"}
	if !slices.Equal(got, want) {
		t.Errorf("strict cipher suites %v, want %v", r.Strict.CipherSuites, want)
	}
	if len(r.Versions) != 0 {
		t.Errorf("versions inside PRELOGIN %v, want none", r.Versions)
	}
	// OpenSSL strips the leading zero (RFC 5246 §8.1.2) and takes a dh_Yc
	// shorter than p.
	if !slices.Equal(r.DHE.GroupsBits, []int{2048}) || r.DHE.LeadingZero != LeadingZeroStrip || r.DHE.ShortPublic != ShortPublicAccepted {
		t.Errorf("dhe %+v: want 2048 bits, leading zero strip, short public accepted", r.DHE)
	}
	if v := verdictOf(t, r, faults.ScenarioDHEEnabled); v.Status != StatusRisk {
		t.Errorf("dhe-enabled %+v, want risk", v)
	}
	if v := verdictOf(t, r, faults.ScenarioDHELeadingZero); v.Status != StatusOK {
		t.Errorf("dhe-leading-zero %+v, want ok (strips)", v)
	}
	if len(r.Certificates) != 1 || r.Certificates[0].SignatureAlgorithm != "SHA256-RSA" {
		t.Errorf("certificates %+v", r.Certificates)
	}
	// Profiles go TLS first here: DHE-first Windows connects with DHE, Go
	// (no DHE) shares no suite.
	if p := profileOf(t, r, "win2012r2"); !p.Connects || p.Scenario != faults.ScenarioDHELeadingZero {
		t.Errorf("win2012r2 %+v", p)
	}
	if p := profileOf(t, r, "go-mssqldb"); p.Connects || p.Scenario != faults.ScenarioCipherMismatch {
		t.Errorf("go-mssqldb %+v", p)
	}
	if v := verdictOf(t, r, faults.ScenarioCipherMismatch); v.Status != StatusRisk {
		t.Errorf("cipher-mismatch %+v", v)
	}
}

// Bad targets fail fast with one line that says why.
func TestProbeBadTargets(t *testing.T) {
	const timeout = 500 * time.Millisecond
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	serve := func(t *testing.T, handle func(net.Conn)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		t.Cleanup(func() { ln.Close(); <-done })
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); handle(c) }()
			}
		}()
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name   string
		target func(t *testing.T) string
		want   string
	}{
		{"refused", refused, "connection refused"},
		{"silent", func(t *testing.T) string {
			// Accepts, reads, never answers; lets go when the probe closes.
			return serve(t, func(c net.Conn) {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(io.Discard, c)
			})
		}, "no answer to PRELOGIN within 500ms"},
		{"HTTP", func(t *testing.T) string {
			s := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(s.Close)
			return s.Listener.Addr().String()
		}, "HTTP server"},
		{"HTTPS", func(t *testing.T) string {
			s := httptest.NewTLSServer(http.NotFoundHandler())
			t.Cleanup(s.Close)
			return s.Listener.Addr().String()
		}, "a TDS 8.0 (TLS-first) hello got alert fatal no_application_protocol(120)"},
		{"garbage", func(t *testing.T) string {
			return serve(t, func(c net.Conn) { _, _ = c.Write([]byte{0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, 0x88, 0x77}) })
		}, "not a TDS packet header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.target(t)
			start := time.Now()
			_, err := Run(context.Background(), Config{Target: addr, Timeout: timeout})
			elapsed := time.Since(start)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Run: %v, want ErrUnreachable", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, addr) {
				t.Errorf("error %q: want one line starting with the target and containing %q", msg, tc.want)
			}
			if elapsed > 4*timeout {
				t.Errorf("took %v with a %v timeout", elapsed, timeout)
			}
		})
	}
}

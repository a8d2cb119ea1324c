package tlsbridge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// A TLS 1.0-only client, mirrored to a TLS 1.2-only upstream: the
// upstream refuses the mirrored hello, and the client gets the upstream's
// own alert.
func TestBridgeMirrorOldClientRejectedUpstream(t *testing.T) {
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOff, TLSMin: tls.VersionTLS12, TLSMax: tls.VersionTLS12})
	r := startBridge(t, emu, nil)
	before := emu.Stats()
	res := r.mssql(t, "true", brPassword, "SELECT 1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 })
	if res.OK || !strings.Contains(res.Error, "protocol version not supported") {
		t.Fatalf("ok %v error %q, want the upstream's protocol_version alert", res.OK, res.Error)
	}
	rep := r.next(t)
	if rep.DecidedBy != "upstream server" || rep.Alert == nil || rep.Alert.Description != 70 {
		t.Fatalf("decided by %q alert %v failure %q", rep.DecidedBy, rep.Alert, rep.Failure)
	}
	if rep.UpstreamHello == nil || rep.UpstreamHello.HighestVersion() != tls.VersionTLS10 ||
		rep.UpstreamHello.JA4() != rep.ClientHello.JA4() {
		t.Fatalf("upstream hello %v, client JA4 %s", rep.UpstreamHello, rep.ClientHello.JA4())
	}
	if emu.Stats().TLSHandshakes != before.TLSHandshakes {
		t.Error("the emulator completed a handshake")
	}
}

// The scenarios configure the client-facing TLS server; the handshake
// decides, and the close style is rst (no alert) or alert.
func TestBridgePolicyScenarios(t *testing.T) {
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOff})
	old := func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }
	cases := []struct {
		name      string
		pol       tlsbridge.ServerPolicy
		client    func(*tls.Config)
		rstErr    string
		alertErr  string
		decidedBy string
	}{
		{"protocol-mismatch", tlsbridge.ServerPolicy{Versions: []uint16{tls.VersionTLS12}}, old,
			"connection reset by peer", "protocol version not supported", "client-leg TLS (crypto/tls)"},
		{"cipher-mismatch", tlsbridge.ServerPolicy{Versions: []uint16{tls.VersionTLS12}, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}, nil,
			"connection reset by peer", "handshake failure", "client-leg TLS (crypto/tls)"},
		{"weak-cert-hash", tlsbridge.ServerPolicy{CertHash: "md5"}, nil,
			"connection reset by peer", "handshake failure", "bridge (Schannel's certificate rule)"},
	}
	for _, tc := range cases {
		for _, alert := range []bool{false, true} {
			style := map[bool]string{false: "rst", true: "alert"}[alert]
			t.Run(tc.name+"/"+style, func(t *testing.T) {
				pol := tc.pol
				pol.Alert = alert
				r := startBridge(t, emu, func(c *tlsbridge.BridgeConfig) { c.Policy = &pol })
				before := emu.Stats()
				res := r.mssql(t, "true", brPassword, "SELECT 1", tc.client)
				want := tc.rstErr
				if alert {
					want = tc.alertErr
				}
				if res.OK || !strings.Contains(res.Error, want) {
					t.Fatalf("ok %v error %q, want %q", res.OK, res.Error, want)
				}
				rep := r.next(t)
				if rep.DecidedBy != tc.decidedBy || rep.Reset == alert {
					t.Errorf("decided by %q reset %v failure %q", rep.DecidedBy, rep.Reset, rep.Failure)
				}
				if alert != (rep.Alert != nil) {
					t.Errorf("alert %v", rep.Alert)
				}
				if got := emu.Stats().TLSHandshakes - before.TLSHandshakes; got != 0 {
					t.Errorf("the upstream did %d handshakes for a connection the client leg refused", got)
				}
			})
		}
	}
	// A certificate signed with a weak hash the client does list passes,
	// and the client sees that certificate.
	t.Run("weak-cert-hash/sha512 accepted", func(t *testing.T) {
		r := startBridge(t, emu, func(c *tlsbridge.BridgeConfig) { c.Policy = &tlsbridge.ServerPolicy{CertHash: "sha512"} })
		res := r.mssql(t, "true", brPassword, "SELECT 1", nil)
		if !res.OK {
			t.Fatalf("error %q", res.Error)
		}
		rep := r.next(t)
		if rep.Client == nil || rep.Client.Cert == nil || rep.Client.Cert.SignatureHash != "sha512" {
			t.Fatalf("client leg %+v", rep.Client)
		}
	})
}

// The upstream is verified by default; --upstream-insecure skips it and
// the report says so; --upstream-hello go sends Go's hello.
func TestBridgeUpstreamVerification(t *testing.T) {
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOn})
	r := startBridge(t, emu, func(c *tlsbridge.BridgeConfig) { c.UpstreamRoots = x509.NewCertPool() })
	res := r.mssql(t, "true", brPassword, "SELECT 1", nil)
	if res.OK {
		t.Fatal("connected through an unverified upstream")
	}
	rep := r.next(t)
	if rep.DecidedBy != "upstream server" || !strings.Contains(rep.Failure, "certificate") {
		t.Fatalf("decided by %q failure %q", rep.DecidedBy, rep.Failure)
	}
	r = startBridge(t, emu, func(c *tlsbridge.BridgeConfig) {
		c.UpstreamRoots, c.UpstreamInsecure, c.Hello = x509.NewCertPool(), true, tlsbridge.HelloGo
	})
	res = r.mssql(t, "true", brPassword, "SELECT 1", nil)
	if !res.OK {
		t.Fatalf("insecure: %q", res.Error)
	}
	rep = r.next(t)
	if !rep.Insecure || rep.HelloMode != tlsbridge.HelloGo || rep.UpstreamHello == nil || len(rep.Dropped) != 0 {
		t.Fatalf("insecure %v mode %q upstream hello %v dropped %q", rep.Insecure, rep.HelloMode, rep.UpstreamHello != nil, rep.Dropped)
	}
	if rep.Client.Cert == nil || !strings.Contains(rep.Client.Cert.Subject, "tdsproxy emulator") {
		t.Errorf("the minted leaf does not copy the upstream subject: %+v", rep.Client.Cert)
	}
}

// Hostile input against the bridge listener: each is closed and reported
// with a reason, and a real client still gets through afterwards.
func TestBridgeHostileInput(t *testing.T) {
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOn})
	r := startBridge(t, emu, func(c *tlsbridge.BridgeConfig) { c.HandshakeTimeout = 2 * time.Second })
	w := tds.Writer{}
	plBytes := func(enc tds.Encryption) []byte {
		p := &tds.Prelogin{}
		p.Set(tds.PreloginVersion, []byte{1, 2, 3, 4, 0, 0})
		p.Set(tds.PreloginEncryption, []byte{byte(enc)})
		return w.AppendMessage(nil, tds.PacketPrelogin, 0, p.Marshal())
	}
	cases := []struct {
		name, want string
		send       []byte
	}{
		{"not TDS", "does not speak TDS", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"malformed ClientHello (strict)", "client TLS handshake", []byte{0x16, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3}},
		{"record of bad length (strict)", "client TLS handshake", []byte{0x16, 3, 3, 0xFF, 0xFF, 1, 2, 3}},
		{"garbage inside PRELOGIN TLS", "client TLS handshake", append(plBytes(tds.EncryptOn), w.AppendMessage(nil, tds.PacketPrelogin, 0, []byte("not a TLS record at all"))...)},
		{"stops mid-handshake", "client TLS handshake", plBytes(tds.EncryptOn)},
		{"bad PRELOGIN header", "client PRELOGIN", []byte{0x12, 1, 0, 3, 0, 0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(r.port)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.send)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c) // until the bridge closes
			rep := r.next(t)
			if !strings.Contains(rep.Failure, tc.want) {
				t.Fatalf("failure %q, want %q", rep.Failure, tc.want)
			}
		})
	}
	t.Run("TDS garbage inside TLS", func(t *testing.T) {
		// A strict client that completes TLS and then sends garbage: the
		// bridge relays it (the upstream judges TDS) and the decoder notes it.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.certs.CAPEM())
		c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(r.port)), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"tds/8.0"}})
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x12, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0xde, 0xad})
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
		rep := r.next(t)
		if len(rep.Session.Issues) == 0 {
			t.Fatalf("no issue recorded: %+v", rep.Session)
		}
	})
	res := r.mssql(t, "true", brPassword, "SELECT 1", nil)
	if !res.OK {
		t.Fatalf("a real client after the hostile ones: %q", res.Error)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCertSource(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "sub", "ca.pem")
	s1, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CAOut: out})
	if err != nil {
		t.Fatal(err)
	}
	if !s1.Generated || s1.CAPath != out {
		t.Fatalf("generated %v path %q", s1.Generated, s1.CAPath)
	}
	if fi, err := os.Stat(out + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v %v", fi, err)
	}
	s2, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CAOut: out})
	if err != nil || s2.Generated || string(s2.CAPEM()) != string(s1.CAPEM()) {
		t.Fatalf("the CA was not reused: %v", err)
	}
	// The same CA given as files mints leaves that verify against it.
	s3, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CAFile: out, CAKeyFile: out + ".key"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := s3.Certificate("sql01.example", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s1.CAPEM())
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "sql01.example"}); err != nil {
		t.Fatalf("minted leaf: %v", err)
	}
	// A given pair is used as it is.
	_, certPEM, keyPEM, err := tlsbridge.GenerateCertificate(tlsbridge.CertOptions{CommonName: "given"})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), keyPEM, 0o600)
	s4, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s4.Certificate("x", nil, ""); c == nil || !s4.Fixed() || s4.CAPEM() != nil {
		t.Fatal("given pair not used")
	}
	for _, bad := range []tlsbridge.BridgeCertConfig{
		{CertFile: "a"}, {CAFile: "a"}, {CertFile: "a", KeyFile: "b", CAFile: "c", CAKeyFile: "d"}, {CertFile: "a", KeyFile: "b", CAOut: "c"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// A certificate that is not a CA is refused as one.
	if _, err := tlsbridge.LoadCertSource(tlsbridge.BridgeCertConfig{CAFile: filepath.Join(dir, "c.pem"), CAKeyFile: filepath.Join(dir, "k.pem")}); err == nil {
		t.Error("a leaf accepted as a CA")
	}
}

// TLS 1.0 on both legs where client and server allow it: the client leg
// follows the version the upstream negotiated.
func TestBridgeOldTLSBothLegs(t *testing.T) {
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOff, TLSMin: tls.VersionTLS10})
	r := startBridge(t, emu, nil)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12} {
		res := r.mssql(t, "true", brPassword, "SELECT 1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = v, v })
		if !res.OK {
			t.Fatalf("%s: %q", tlsbridge.VersionName(v), res.Error)
		}
		rep := r.next(t)
		if rep.Client.Version != v || rep.Upstream.Version != v || rep.ClientHello.JA4() != rep.UpstreamHello.JA4() {
			t.Fatalf("%s: legs %s / %s, JA4 %s / %s", tlsbridge.VersionName(v), rep.Client, rep.Upstream, rep.ClientHello.JA4(), rep.UpstreamHello.JA4())
		}
	}
}

// A client offering only suites the bridge cannot complete (OpenSSL with
// DHE only) is refused by the bridge with handshake_failure; the upstream
// never hears of it.
func TestBridgeNothingToMirror(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	emu := startEmu(t, emulator.Config{Encrypt: tds.EncryptOff})
	r := startBridge(t, emu, nil)
	before := emu.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", net.JoinHostPort("127.0.0.1", itoa(r.port)),
		"-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256", "-alpn", "tds/8.0")
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "alert handshake failure") {
		t.Errorf("s_client output lacks the handshake_failure alert:\n%s", out)
	}
	rep := r.next(t)
	if rep.DecidedBy != "bridge (mirror)" || rep.Alert == nil || rep.Alert.Description != tlsbridge.AlertHandshakeFailure ||
		!strings.Contains(rep.Failure, "no cipher suite left") || len(rep.Dropped) == 0 {
		t.Fatalf("decided by %q alert %v failure %q dropped %q", rep.DecidedBy, rep.Alert, rep.Failure, rep.Dropped)
	}
	if emu.Stats().TLSHandshakes != before.TLSHandshakes {
		t.Error("the upstream completed a handshake")
	}
}

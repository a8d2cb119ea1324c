package emulator

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// dheClientConfig is an engine client that trusts the emulator.
func dheClientConfig(t *testing.T, s *Server) *dhe.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertificatePEM()) {
		t.Fatal("emulator certificate does not parse")
	}
	return &dhe.Config{RootCAs: pool, ServerName: "localhost"}
}

// dheSession connects to s with the DHE engine as the client, the way a
// driver does in the given form ("session": ENCRYPT_ON, TLS for the whole
// session; "login-only": ENCRYPT_OFF on both sides; "strict": TDS 8.0),
// logs in and runs SELECT 1. It returns the engine's state and the first
// error, which is the handshake's when the handshake fails.
func dheSession(t *testing.T, s *Server, form string, cfg *dhe.Config) (dhe.ConnectionState, error) {
	t.Helper()
	raw, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if form == "strict" {
		cfg.NextProtos = []string{"tds/8.0"}
		dc := dhe.Client(raw, cfg)
		if err := dc.Handshake(); err != nil {
			return dc.ConnectionState(), err
		}
		c := &wireClient{t: t, conn: dc, r: tds.NewReader(dc), w: tds.Writer{W: dc}}
		pre := &tds.Prelogin{}
		pre.Set(tds.PreloginVersion, []byte{1, 0, 0, 0, 0, 0})
		pre.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptStrict)})
		c.send(tds.PacketPrelogin, pre.Marshal())
		c.readReply(tds.DefaultPacketSize)
		return dc.ConnectionState(), loginSelectOne(c, c)
	}
	w := &wireClient{t: t, conn: raw, r: tds.NewReader(raw), w: tds.Writer{W: raw}}
	enc := tds.EncryptOn
	if form == "login-only" {
		enc = tds.EncryptOff
	}
	pre := &tds.Prelogin{}
	pre.Set(tds.PreloginVersion, []byte{1, 0, 0, 0, 0, 0})
	pre.Set(tds.PreloginEncryption, []byte{byte(enc)})
	w.send(tds.PacketPrelogin, pre.Marshal())
	w.readReply(tds.DefaultPacketSize)
	fc := tlsbridge.NewFramedConn(raw, tlsbridge.RoleClient, tds.DefaultPacketSize)
	dc := dhe.Client(fc, cfg)
	if err := dc.Handshake(); err != nil {
		return dc.ConnectionState(), err
	}
	if err := fc.SwitchToRaw(); err != nil {
		t.Fatal(err)
	}
	st := dc.ConnectionState()
	sess := &wireClient{t: t, conn: dc, r: tds.NewReader(dc), w: tds.Writer{W: dc}}
	if form == "login-only" {
		// The first LOGIN7 packet in TLS, everything after in plaintext.
		plain := &wireClient{t: t, conn: fc, r: tds.NewReader(fc), w: tds.Writer{W: fc}}
		return st, loginSelectOne(&loginOnlyWriter{t: t, tc: dc, raw: fc}, plain)
	}
	return st, loginSelectOne(sess, sess)
}

type messageSender interface {
	send(typ tds.PacketType, payload []byte)
}

// loginOnlyWriter sends LOGIN7 through TLS and later messages in plaintext.
type loginOnlyWriter struct {
	t       *testing.T
	tc, raw io.Writer
	done    bool
}

func (l *loginOnlyWriter) send(typ tds.PacketType, payload []byte) {
	l.t.Helper()
	var buf bytes.Buffer
	if err := (&tds.Writer{W: &buf}).WriteMessage(typ, payload); err != nil {
		l.t.Fatal(err)
	}
	if l.done {
		if _, err := l.raw.Write(buf.Bytes()); err != nil {
			l.t.Fatal(err)
		}
		return
	}
	l.done = true
	if err := tlsbridge.WriteLoginOnly(l.tc, l.raw, buf.Bytes()); err != nil {
		l.t.Fatal(err)
	}
}

// loginSelectOne sends LOGIN7 and SELECT 1 through w and reads the answers
// through r.
func loginSelectOne(w messageSender, r *wireClient) error {
	l := &tds.Login7{TDSVersion: tds.VersionTDS74, PacketSize: 4096, UserName: "dhe",
		Password: tds.NewPassword("pw"), AppName: "dhe_test", HostName: "test"}
	w.send(tds.PacketLogin7, l.Marshal())
	payload, _ := r.readReply(tds.DefaultPacketSize)
	if _, err := tds.ParseLoginResponse(payload); err != nil {
		return fmt.Errorf("login response: %w", err)
	}
	w.send(tds.PacketSQLBatch, tds.AppendSQLBatch(nil, "SELECT 1", 0))
	payload, _ = r.readReply(tds.DefaultPacketSize)
	res, err := tds.ParseResult(payload)
	if err != nil {
		return fmt.Errorf("SELECT 1: %w", err)
	}
	if len(res.Rows) != 1 {
		return fmt.Errorf("SELECT 1: %d rows", len(res.Rows))
	}
	return nil
}

// TestDHEEngineClientForms: an engine client negotiates DHE with the
// emulator inside PRELOGIN (session and login-only) and in strict mode,
// for several groups, and runs SELECT 1.
func TestDHEEngineClientForms(t *testing.T) {
	for _, group := range []string{"ffdhe2048", "rfc5114-2048-256", "modp1024"} {
		for _, form := range []string{"session", "login-only", "strict"} {
			t.Run(group+"/"+form, func(t *testing.T) {
				enc := tds.EncryptOn
				if form == "login-only" {
					enc = tds.EncryptOff
				}
				s := startServer(t, Config{Encrypt: enc, DHE: DHEPrefer, DHEGroup: group, TLSMin: 0x0301})
				st, err := dheSession(t, s, form, dheClientConfig(t, s))
				if err != nil {
					t.Fatal(err)
				}
				if st.Group != group || !dhe.IsDHESuite(st.CipherSuite) {
					t.Errorf("client state: group %s, suite 0x%04X", st.Group, st.CipherSuite)
				}
				if form == "strict" && st.NegotiatedProtocol != "tds/8.0" {
					t.Errorf("ALPN %q", st.NegotiatedProtocol)
				}
				if got := s.Stats(); got.DHEHandshakes != 1 || got.LoginsOK != 1 {
					t.Errorf("stats %+v", got)
				}
			})
		}
	}
}

// TestDHELeadingZeroAgainstEmulator: a grinding client that strips Z
// against an emulator that pads it (unpatched Windows) fails every time,
// the way --dhe-fail says; against a stripping emulator it succeeds.
func TestDHELeadingZeroAgainstEmulator(t *testing.T) {
	for _, form := range []string{"session", "strict"} {
		for _, fail := range []dhe.FailMode{dhe.FailFIN, dhe.FailRST, dhe.FailAlert} {
			t.Run(form+"/"+fail.String(), func(t *testing.T) {
				s := startServer(t, Config{Encrypt: tds.EncryptOn, DHE: DHEOnly, DHEZ: dhe.ZPad, DHEY: dhe.YPadded, DHEFail: fail})
				cfg := dheClientConfig(t, s)
				cfg.Grind = true
				st, err := dheSession(t, s, form, cfg)
				if !st.ZLeadingZero {
					t.Fatalf("grind gave no leading zero: %+v", st)
				}
				var ae *dhe.AlertError
				switch fail {
				case dhe.FailAlert:
					if !errors.As(err, &ae) || !ae.Remote || ae.Description != 20 {
						t.Errorf("client error %v, want remote bad_record_mac", err)
					}
				case dhe.FailFIN:
					if !errors.Is(err, io.EOF) {
						t.Errorf("client error %v, want EOF", err)
					}
				case dhe.FailRST:
					if !errors.Is(err, syscall.ECONNRESET) {
						t.Errorf("client error %v, want ECONNRESET", err)
					}
				}
				waitStats(t, s, func(st Stats) bool { return st.TLSFailures == 1 })
			})
		}
		t.Run(form+"/strip-server", func(t *testing.T) {
			s := startServer(t, Config{Encrypt: tds.EncryptOn, DHE: DHEOnly})
			cfg := dheClientConfig(t, s)
			cfg.Grind = true
			st, err := dheSession(t, s, form, cfg)
			if err != nil || !st.ZLeadingZero {
				t.Fatalf("err %v, leading zero %v", err, st.ZLeadingZero)
			}
		})
	}
}

// TestDHEModes: with prefer, a client without DHE (go-mssqldb) still
// connects through crypto/tls; with only, it is refused.
func TestDHEModes(t *testing.T) {
	for _, mode := range []DHEMode{DHEPrefer, DHEOnly} {
		t.Run(mode.String(), func(t *testing.T) {
			s := startServer(t, Config{Encrypt: tds.EncryptOn, DHE: mode})
			db := openDB(t, dsn(s, "sa", "x", url.Values{"encrypt": {"true"}, "TrustServerCertificate": {"true"}}))
			var n int
			err := db.QueryRowContext(testContext(t), "SELECT 1").Scan(&n)
			if mode == DHEPrefer && err != nil {
				t.Fatalf("SELECT 1: %v", err)
			}
			if mode == DHEOnly && err == nil {
				t.Fatal("a client with no DHE suite connected to a DHE-only server")
			}
			if st := s.Stats(); st.DHEHandshakes != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// waitStats polls the server's counters until cond holds (the server
// counts a failure after the client has seen it). internal/testkit's
// WaitFor cannot be used here: testkit imports this package.
func waitStats(t *testing.T, s *Server, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewValidatesDHEConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown group": {DHE: DHEPrefer, DHEGroup: "ffdhe1536"},
		"TLS 1.3 only":  {DHE: DHEOnly, TLSMin: 0x0304},
		"unknown mode":  {DHE: DHEMode(7)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	for _, s := range []string{"off", "prefer", "only"} {
		if m, err := ParseDHEMode(s); err != nil || m.String() != s {
			t.Errorf("ParseDHEMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseDHEMode("always"); err == nil {
		t.Error("ParseDHEMode accepted always")
	}
}

// TestPeekClientHello: dhe.ReadClientHello, as the emulator uses it: a ClientHello split over two records is read whole
// and replayed byte for byte, whatever its length (its 24-bit length is
// added to the 4-byte header, not OR-ed into it).
func TestPeekClientHello(t *testing.T) {
	for n := 1; n <= 8; n++ {
		hello := goClientHello(t, strings.Repeat("a", n)+".example")
		body := hello[5:]
		split := append([]byte{0x16, 3, 1, 0, 10}, body[:10]...)
		rest := body[10:]
		split = append(split, 0x16, 3, 1, byte(len(rest)>>8), byte(len(rest)))
		split = append(split, rest...)
		h, raw, err := dhe.ReadClientHello(bytes.NewReader(append(split, 0xEE)))
		if err != nil {
			t.Fatalf("%d-byte hello: %v", len(body), err)
		}
		if !bytes.Equal(raw, split) || h.ServerName != strings.Repeat("a", n)+".example" {
			t.Fatalf("%d-byte hello: replay %d bytes of %d, SNI %q", len(body), len(raw), len(split), h.ServerName)
		}
	}
}

// goClientHello returns the first record crypto/tls sends as a client.
func goClientHello(t *testing.T, sni string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go tls.Client(c, &tls.Config{ServerName: sni}).Handshake()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// TestDHEKeyLog: the emulator's NSS key log line for a DHE session is the
// one the client logs (same client random, same master secret).
func TestDHEKeyLog(t *testing.T) {
	var serverLog bytes.Buffer
	s := startServer(t, Config{Encrypt: tds.EncryptOn, DHE: DHEOnly, DHEKeyLog: &serverLog})
	cfg := dheClientConfig(t, s)
	var clientLog bytes.Buffer
	cfg.KeyLogWriter = &clientLog
	if _, err := dheSession(t, s, "session", cfg); err != nil {
		t.Fatal(err)
	}
	s.Close() // the handler has returned: serverLog is complete
	if !strings.HasPrefix(clientLog.String(), "CLIENT_RANDOM ") || serverLog.String() != clientLog.String() {
		t.Errorf("server key log %q, client %q", serverLog.String(), clientLog.String())
	}
}

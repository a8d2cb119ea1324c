package dhe

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// Fuzz targets for every handshake message the engine parses, and for the
// record and handshake reading path of a server. Each exec is cheap (no
// modular exponentiation unless the input reaches a key exchange).

type namedSeed struct {
	name string
	b    []byte
}

func addSeeds(f *testing.F, seeds []namedSeed) {
	f.Helper()
	for _, s := range seeds {
		f.Add(s.b)
	}
}

// engineClientHello is the body of the ClientHello the engine's client
// sends, with every extension it knows.
func engineClientHello() []byte {
	h := &clientHelloMsg{vers: VersionTLS12, random: make([]byte, 32), sessionID: []byte{1, 2}, compression: []byte{0},
		cipherSuites: append(CipherSuites(), scsvRenegotiation), serverName: "localhost", ems: true, secureReneg: true,
		sigAlgs: []uint16{sigRSASHA256, sigRSASHA1}, alpn: []string{"tds/8.0"}, supportedGroups: []uint16{namedFFDHE2048}}
	return h.marshal()[4:]
}

func FuzzClientHello(f *testing.F) {
	addSeeds(f, []namedSeed{
		{"engine client, all extensions", engineClientHello()},
		{"no extensions", (&clientHelloMsg{vers: VersionTLS10, random: make([]byte, 32), compression: []byte{0}, cipherSuites: []uint16{0x33}}).marshal()[4:]},
		{"truncated", engineClientHello()[:40]},
		{"empty", nil},
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m clientHelloMsg
		if !m.unmarshal(b) {
			return
		}
		var m2 clientHelloMsg
		if !m2.unmarshal(m.marshal()[4:]) {
			t.Fatalf("re-marshalled ClientHello does not parse: %+v", m)
		}
		if m2.vers != m.vers || len(m2.cipherSuites) != len(m.cipherSuites) || m2.ems != m.ems || m2.secureReneg != m.secureReneg {
			t.Fatalf("round trip changed the hello: %+v -> %+v", m, m2)
		}
	})
}

func FuzzServerHello(f *testing.F) {
	full := (&serverHelloMsg{vers: VersionTLS12, random: make([]byte, 32), cipherSuite: 0x9e, ems: true, secureReneg: true, alpn: "tds/8.0"}).marshal()[4:]
	addSeeds(f, []namedSeed{
		{"all extensions", full},
		{"bare", (&serverHelloMsg{vers: VersionTLS10, random: make([]byte, 32), cipherSuite: 0x33}).marshal()[4:]},
		{"truncated", full[:len(full)-3]},
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m serverHelloMsg
		if !m.unmarshal(b) {
			return
		}
		var m2 serverHelloMsg
		if !m2.unmarshal(m.marshal()[4:]) || m2.cipherSuite != m.cipherSuite || m2.alpn != m.alpn || m2.ems != m.ems {
			t.Fatalf("round trip: %+v -> %+v", m, m2)
		}
	})
}

func FuzzCertificate(f *testing.F) {
	addSeeds(f, []namedSeed{
		{"two certificates", (&certificateMsg{certificates: [][]byte{{1, 2, 3}, {4}}}).marshal()[4:]},
		{"empty list", []byte{0, 0, 0}},
		{"length past end", []byte{0, 0, 9, 0, 0, 5, 1}},
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m certificateMsg
		if m.unmarshal(b) && !bytes.Equal(m.marshal()[4:], b) {
			t.Fatal("Certificate does not round-trip")
		}
	})
}

func FuzzServerKeyExchange(f *testing.F) {
	params := encodeDHParams(groupMODP1024.P.Bytes(), []byte{2}, []byte{7, 7, 7})
	ske12 := (&serverKeyExchangeMsg{params: params, sigAlg: sigRSASHA256, sig: []byte{1, 2, 3}}).marshal(VersionTLS12)[4:]
	ske10 := (&serverKeyExchangeMsg{params: params, sig: []byte{1, 2, 3}}).marshal(VersionTLS10)[4:]
	for _, s := range []namedSeed{{"tls12", ske12}, {"tls10", ske10}, {"zero-length p", []byte{0, 0, 0, 1, 2, 0, 1, 5}}} {
		f.Add(s.b, true)
		f.Add(s.b, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, tls12 bool) {
		v := VersionTLS10
		if tls12 {
			v = VersionTLS12
		}
		var m serverKeyExchangeMsg
		if !m.unmarshal(b, v) {
			return
		}
		if !bytes.Equal(m.marshal(v)[4:], b) {
			t.Fatal("ServerKeyExchange does not round-trip")
		}
		// The client's group check must not panic either, and refuses
		// tiny or even primes.
		if g, err := checkServerGroup(m.p, m.g, 0); err == nil && (g.Bits() < DefaultMinGroupBits || g.P.Bit(0) == 0) {
			t.Fatalf("accepted a %d-bit prime", g.Bits())
		}
	})
}

func FuzzClientKeyExchange(f *testing.F) {
	addSeeds(f, []namedSeed{
		{"one byte", (&clientKeyExchangeMsg{yc: []byte{2}}).marshal()[4:]},
		{"short length", []byte{0, 5, 1}},
		{"trailing", []byte{0, 1, 2, 3}},
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m clientKeyExchangeMsg
		if !m.unmarshal(b) {
			return
		}
		if !bytes.Equal(m.marshal()[4:], b) {
			t.Fatal("ClientKeyExchange does not round-trip")
		}
		ka := &keyAgreement{group: groupMODP1024}
		if y, err := ka.checkPeerY(m.yc); err == nil && (y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(groupMODP1024.P) >= 0) {
			t.Fatalf("accepted Y=%v", y)
		}
	})
}

func FuzzFinished(f *testing.F) {
	addSeeds(f, []namedSeed{{"twelve", make([]byte, 12)}, {"eleven", make([]byte, 11)}})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m finishedMsg
		if m.unmarshal(b) != (len(b) == finishedLen) {
			t.Fatalf("%d-byte Finished", len(b))
		}
	})
}

// FuzzRecordOpen feeds record bodies to each kind of record protection.
func FuzzRecordOpen(f *testing.F) {
	for _, n := range []int{0, 8, 24, 40, 48, 64} {
		f.Add(make([]byte, n), uint8(0))
		f.Add(make([]byte, n), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		type kind struct {
			v uint16
			s uint16
		}
		kinds := []kind{{VersionTLS12, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256}, {VersionTLS12, TLS_DHE_RSA_WITH_AES_256_CBC_SHA256},
			{VersionTLS11, TLS_DHE_RSA_WITH_AES_128_CBC_SHA}, {VersionTLS10, TLS_DHE_RSA_WITH_AES_256_CBC_SHA}}
		k := kinds[int(which)%len(kinds)]
		s := suiteByID(k.s)
		hc, err := newHalfConn(k.v, s, make([]byte, s.keyLen), make([]byte, s.macLen), make([]byte, s.ivLen))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hc.open(recordApplicationData, bytes.Clone(body)); err != nil && err != errBadRecordMAC {
			t.Fatalf("open: %v", err)
		}
	})
}

// FuzzServerHandshake feeds arbitrary client bytes to a server Conn: the
// record reader, the handshake reassembly and ClientHello processing.
func FuzzServerHandshake(f *testing.F) {
	cert, _, _ := testCert(f)
	hello := engineClientHello()
	rec := func(typ uint8, payload []byte) []byte {
		return append([]byte{typ, 3, 1, byte(len(payload) >> 8), byte(len(payload))}, payload...)
	}
	msg := append([]byte{typeClientHello, 0, byte(len(hello) >> 8), byte(len(hello))}, hello...)
	addSeeds(f, []namedSeed{
		{"ClientHello in one record", rec(recordHandshake, msg)},
		{"ClientHello in two records", append(rec(recordHandshake, msg[:10]), rec(recordHandshake, msg[10:])...)},
		{"alert", rec(recordAlert, []byte{2, 40})},
		{"application data first", rec(recordApplicationData, []byte("x"))},
		{"oversized record", []byte{22, 3, 3, 0xff, 0xff}},
	})
	cfg := &Config{Certificates: []tls.Certificate{cert}, Group: groupMODP1024}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := Server(&fuzzConn{r: bytes.NewReader(in)}, cfg)
		_ = c.Handshake() // must return, never panic
	})
}

// fuzzConn is a net.Conn reading from r and discarding writes.
type fuzzConn struct{ r io.Reader }

func (c *fuzzConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *fuzzConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadClientHello: the peek a server does before choosing its TLS
// stack never panics and never returns more bytes than it was given.
func FuzzReadClientHello(f *testing.F) {
	hello := engineClientHello()
	msg := append([]byte{typeClientHello, 0, byte(len(hello) >> 8), byte(len(hello))}, hello...)
	rec := func(payload []byte) []byte {
		return append([]byte{recordHandshake, 3, 1, byte(len(payload) >> 8), byte(len(payload))}, payload...)
	}
	addSeeds(f, []namedSeed{
		{"one record", rec(msg)},
		{"split header", append(rec(msg[:2]), rec(msg[2:])...)},
		{"not handshake", []byte{23, 3, 3, 0, 1, 0}},
		{"empty record", []byte{22, 3, 1, 0, 0}},
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, raw, err := ReadClientHello(bytes.NewReader(in))
		if len(raw) > len(in) || !bytes.Equal(raw, in[:len(raw)]) {
			t.Fatalf("returned %d bytes that were not read", len(raw))
		}
		if err == nil && h == nil {
			t.Fatal("nil hello without error")
		}
	})
}

// FuzzClientHandshake feeds arbitrary server bytes to a client Conn: the
// record reader and the ServerHello, Certificate, ServerKeyExchange and
// ServerHelloDone steps.
func FuzzClientHandshake(f *testing.F) {
	rec := func(payload []byte) []byte {
		return append([]byte{recordHandshake, 3, 3, byte(len(payload) >> 8), byte(len(payload))}, payload...)
	}
	sh := (&serverHelloMsg{vers: VersionTLS12, random: make([]byte, 32), cipherSuite: TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, ems: true, secureReneg: true}).marshal()
	cert := (&certificateMsg{certificates: [][]byte{{0x30, 0x03, 0x02, 0x01, 0x01}}}).marshal()
	params := encodeDHParams(groupMODP1024.P.Bytes(), []byte{2}, []byte{7})
	ske := (&serverKeyExchangeMsg{params: params, sigAlg: sigRSASHA256, sig: []byte{1}}).marshal(VersionTLS12)
	addSeeds(f, []namedSeed{
		{"ServerHello", rec(sh)},
		{"ServerHello + bad certificate", rec(append(append([]byte{}, sh...), cert...))},
		{"ServerHello + SKE without certificate", append(rec(sh), rec(ske)...)},
		{"fatal alert", []byte{21, 3, 3, 0, 2, 2, 40}},
	})
	cfg := &Config{InsecureSkipVerify: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = Client(&fuzzConn{r: bytes.NewReader(in)}, cfg).Handshake() // must return, never panic
	})
}

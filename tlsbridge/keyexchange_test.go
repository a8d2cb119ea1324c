package tlsbridge

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// buildDHEKeyExchange encodes ServerDHParams (RFC 5246 §7.4.3) with an
// optional PSK hint prefix and signature suffix.
func buildDHEKeyExchange(t testing.TB, hint []byte, p, g, ys []byte, scheme uint16, sig []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddUint8(uint8(HandshakeServerKeyExchange))
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		if hint != nil {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(hint) })
		}
		for _, v := range [][]byte{p, g, ys} {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
		}
		if scheme != 0 {
			b.AddUint16(scheme)
		}
		if sig != nil {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
		}
	})
	return b.BytesOrPanic()
}

func TestParseServerKeyExchangeFixtures(t *testing.T) {
	// Expected values: tshark 4.0 on the same bytes (tls.handshake.p_len,
	// .g, .ys_len, .server_named_curve, .server_point_len, .sig_hash_alg,
	// .sig_len).
	t.Run("OpenSSL DHE-RSA-AES128-GCM-SHA256, ffdhe2048", func(t *testing.T) {
		raw := firstHandshake(t, "tls12-dhe-openssl30-s2c.bin", ServerToClient, HandshakeServerKeyExchange).Raw
		for _, v := range []uint16{VersionTLS12, 0} {
			m, err := ParseServerKeyExchange(raw, 0x009E, v)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != KindDHE || m.KeyExchange != KeyExchangeDHE || m.PrimeBits != 2048 || m.Generator.Int64() != 2 ||
				m.PublicLen != 256 || m.SignatureScheme != 0x0804 || len(m.Signature) != 256 {
				t.Fatalf("version %x: %+v", v, m)
			}
			// RFC 7919 ffdhe2048 begins FFFFFFFFFFFFFFFF ADF85458A2BB4A9A.
			if hex.EncodeToString(m.Prime[:16]) != "ffffffffffffffffadf85458a2bb4a9a" {
				t.Fatalf("prime %x...", m.Prime[:16])
			}
			if m.PublicLeadingZero != (m.Public[0] == 0) || m.PublicShorterThanPrime {
				t.Fatalf("Ys flags %+v", m)
			}
		}
	})
	t.Run("OpenSSL TLS 1.0 ECDHE-RSA-AES256-SHA, x25519", func(t *testing.T) {
		raw := firstHandshake(t, "tls10-openssl30-s2c.bin", ServerToClient, HandshakeServerKeyExchange).Raw
		for _, v := range []uint16{VersionTLS10, 0} {
			m, err := ParseServerKeyExchange(raw, 0xC014, v)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != KindECDHE || m.CurveID != GroupX25519 || m.PublicLen != 32 || m.SignatureScheme != 0 || len(m.Signature) != 256 {
				t.Fatalf("version %x: %+v", v, m)
			}
		}
		// The TLS 1.2 layout does not fit a TLS 1.0 message.
		if _, err := ParseServerKeyExchange(raw, 0xC014, VersionTLS12); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("Go crypto/tls TLS 1.2 ECDHE", func(t *testing.T) {
		_, s2c := captureHandshake(t,
			&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12},
			&tls.Config{Certificates: []tls.Certificate{testServerCert(t)}, SessionTicketsDisabled: true})
		evs := feedAll(t, ServerToClient, s2c)
		var sh *ServerHello
		var ske *HandshakeMessage
		for _, m := range handshakes(evs) {
			switch m.Type {
			case HandshakeServerHello:
				var err error
				if sh, err = ParseServerHello(m.Raw); err != nil {
					t.Fatal(err)
				}
			case HandshakeServerKeyExchange:
				ske = m
			}
		}
		if sh == nil || ske == nil {
			t.Fatalf("events %v", summary(evs))
		}
		m, err := ParseServerKeyExchange(ske.Raw, sh.CipherSuite, sh.Version())
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != KindECDHE || m.CurveID != GroupX25519 || m.PublicLen != 32 || m.SignatureScheme == 0 {
			t.Fatalf("%+v", m)
		}
	})
}

func TestParseServerKeyExchangeBuilt(t *testing.T) {
	p := append([]byte{0xC0}, bytes.Repeat([]byte{0xFF}, 255)...) // 2048 bits
	sig := bytes.Repeat([]byte{0x55}, 64)
	tests := []struct {
		name    string
		raw     []byte
		suite   uint16
		version uint16
		check   func(*ServerKeyExchange) bool
	}{
		{"Ys padded with a leading zero", buildDHEKeyExchange(t, nil, p, []byte{2}, append([]byte{0}, make([]byte, 255)...), 0x0401, sig),
			0x009E, VersionTLS12, func(m *ServerKeyExchange) bool {
				return m.PublicLeadingZero && !m.PublicShorterThanPrime && m.PublicLen == 256 && m.PrimeBits == 2048
			}},
		{"Ys shorter than p", buildDHEKeyExchange(t, nil, p, []byte{5}, bytes.Repeat([]byte{1}, 255), 0x0401, sig),
			0x009E, VersionTLS12, func(m *ServerKeyExchange) bool {
				return !m.PublicLeadingZero && m.PublicShorterThanPrime && m.Generator.Int64() == 5
			}},
		{"TLS 1.1 DHE, no algorithm before the signature", buildDHEKeyExchange(t, nil, p, []byte{2}, p, 0, sig),
			0x0033, VersionTLS11, func(m *ServerKeyExchange) bool { return m.SignatureScheme == 0 && len(m.Signature) == 64 }},
		{"DH_anon carries no signature", buildDHEKeyExchange(t, nil, p, []byte{2}, p, 0, nil),
			0x0034, VersionTLS12, func(m *ServerKeyExchange) bool { return m.Kind == KindDHE && m.Signature == nil }},
		{"DHE_PSK starts with the identity hint", buildDHEKeyExchange(t, []byte("hint"), p, []byte{2}, p, 0, nil),
			0x0090, VersionTLS12, func(m *ServerKeyExchange) bool { return string(m.PSKIdentityHint) == "hint" && m.Kind == KindDHE }},
		{"ECDHE_PSK", hsMsg(HandshakeServerKeyExchange, []byte{0, 0, 3, 0, 23, 3, 4, 1, 2}),
			0xC035, VersionTLS12, func(m *ServerKeyExchange) bool {
				return m.Kind == KindECDHE && m.CurveID == GroupSecp256r1 && m.PublicLen == 3
			}},
		{"RSA_EXPORT is left raw", hsMsg(HandshakeServerKeyExchange, []byte{1, 2, 3}),
			0x0003, VersionTLS10, func(m *ServerKeyExchange) bool { return m.Kind == KindUnknown && m.KeyExchange == KeyExchangeRSA }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseServerKeyExchange(tt.raw, tt.suite, tt.version)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(m) {
				t.Fatalf("%+v", m)
			}
		})
	}
	bad := []struct {
		name    string
		raw     []byte
		suite   uint16
		version uint16
		want    error
	}{
		{"TLS 1.3 has none", buildDHEKeyExchange(t, nil, p, []byte{2}, p, 0x0401, sig), 0x009E, VersionTLS13, ErrUnexpectedMessage},
		{"empty p", buildDHEKeyExchange(t, nil, nil, []byte{2}, p, 0x0401, sig), 0x009E, VersionTLS12, ErrMalformed},
		{"missing signature", buildDHEKeyExchange(t, nil, p, []byte{2}, p, 0, nil), 0x009E, VersionTLS12, ErrMalformed},
		{"explicit curve", hsMsg(HandshakeServerKeyExchange, []byte{1, 0, 23}), 0xC02F, VersionTLS12, ErrMalformed},
		{"anon trailing bytes", hsMsg(HandshakeServerKeyExchange, []byte{0, 1, 1, 0, 1, 2, 0, 1, 3, 9}), 0x0034, VersionTLS12, ErrMalformed},
		{"wrong message", hsMsg(HandshakeServerHelloDone, nil), 0x009E, VersionTLS12, ErrUnexpectedMessage},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseServerKeyExchange(tt.raw, tt.suite, tt.version); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzParseServerKeyExchange(f *testing.F) {
	f.Add(firstHandshake(f, "tls12-dhe-openssl30-s2c.bin", ServerToClient, HandshakeServerKeyExchange).Raw, uint16(0x009E), uint16(VersionTLS12))
	f.Add(firstHandshake(f, "tls10-openssl30-s2c.bin", ServerToClient, HandshakeServerKeyExchange).Raw, uint16(0xC014), uint16(VersionTLS10))
	f.Add(buildDHEKeyExchange(f, []byte("h"), []byte{0xff}, []byte{2}, []byte{0, 1}, 0, nil), uint16(0x0090), uint16(0))
	f.Add(hsMsg(HandshakeServerKeyExchange, []byte{0, 0, 3, 0, 23, 1, 4}), uint16(0xC035), uint16(VersionTLS12))
	f.Fuzz(func(t *testing.T, raw []byte, suite, version uint16) {
		m, err := ParseServerKeyExchange(raw, suite, version)
		if err != nil {
			return
		}
		if m.Kind == KindDHE && (m.Generator == nil || len(m.Public) == 0 || len(m.Prime) == 0) {
			t.Fatalf("DHE without parameters: %+v", m)
		}
	})
}

package tlsbridge

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// buildServerHello encodes a ServerHello (RFC 8446 §4.1.3).
func buildServerHello(t testing.TB, version uint16, random []byte, suite uint16, exts []Extension) []byte {
	t.Helper()
	if random == nil {
		random = make([]byte, 32)
	}
	var b cryptobyte.Builder
	b.AddUint8(uint8(HandshakeServerHello))
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(version)
		b.AddBytes(random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(bytes.Repeat([]byte{7}, 32)) })
		b.AddUint16(suite)
		b.AddUint8(0)
		if exts == nil {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range exts {
				b.AddUint16(e.Type)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
			}
		})
	})
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseServerHelloFixtures(t *testing.T) {
	// Expected values: tshark 4.0 on the same bytes (tls.handshake.ciphersuite,
	// .extensions.supported_version, _key_share_group, _key_share_selected_group).
	t.Run("TLS 1.2 DHE", func(t *testing.T) {
		h, err := ParseServerHello(firstHandshake(t, "tls12-dhe-openssl30-s2c.bin", ServerToClient, HandshakeServerHello).Raw)
		if err != nil {
			t.Fatal(err)
		}
		if h.CipherSuite != 0x009E || h.Version() != VersionTLS12 || h.SupportedVersion != 0 || h.IsHelloRetryRequest() || h.IsTLS13() {
			t.Fatalf("%+v", h)
		}
		// s_server ran with -tls1_2: its own maximum is 1.2, so it is not
		// downgrading and sets no RFC 8446 §4.1.3 sentinel.
		if got := h.DowngradeSentinel(); got != 0 {
			t.Errorf("DowngradeSentinel = %x", got)
		}
	})
	t.Run("TLS 1.0 ECDHE", func(t *testing.T) {
		h, err := ParseServerHello(firstHandshake(t, "tls10-openssl30-s2c.bin", ServerToClient, HandshakeServerHello).Raw)
		if err != nil {
			t.Fatal(err)
		}
		if h.CipherSuite != 0xC014 || h.Version() != VersionTLS10 || len(h.Extensions) != 5 {
			t.Fatalf("%+v", h)
		}
	})
	t.Run("TLS 1.3 HelloRetryRequest then ServerHello", func(t *testing.T) {
		var hellos []*ServerHello
		s := NewStream(ServerToClient)
		for _, rec := range splitRecords(t, readFixture(t, "tls13-hrr-openssl30-s2c.bin")) {
			evs, err := s.Feed(rec)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range handshakes(evs) {
				if m.Type != HandshakeServerHello {
					continue
				}
				h, err := ParseServerHello(m.Raw)
				if err != nil {
					t.Fatal(err)
				}
				if h.IsHelloRetryRequest() {
					s.SetTLS13() // else the compat CCS hides the real ServerHello
				}
				hellos = append(hellos, h)
			}
		}
		if len(hellos) != 2 {
			t.Fatalf("%d ServerHellos", len(hellos))
		}
		hrr, sh := hellos[0], hellos[1]
		if !hrr.IsHelloRetryRequest() || hrr.SelectedGroup != GroupSecp384r1 || hrr.Version() != VersionTLS13 || hrr.CipherSuite != 0x1302 {
			t.Errorf("HRR %+v", hrr)
		}
		if sh.IsHelloRetryRequest() || !sh.IsTLS13() || sh.SelectedGroup != GroupSecp384r1 || sh.LegacyVersion != VersionTLS12 {
			t.Errorf("ServerHello %+v", sh)
		}
	})
}

func TestParseServerHelloBuilt(t *testing.T) {
	alpn := Extension{ExtALPN, []byte{0, 8, 7, 't', 'd', 's', '/', '8', '.', '0'}}
	sv := Extension{ExtSupportedVersions, []byte{3, 4}}
	ks := Extension{ExtKeyShare, append([]byte{0, 29, 0, 32}, make([]byte, 32)...)}
	t.Run("TLS 1.3 with ALPN", func(t *testing.T) {
		h, err := ParseServerHello(buildServerHello(t, VersionTLS12, nil, 0x1301, []Extension{sv, ks, alpn}))
		if err != nil {
			t.Fatal(err)
		}
		if h.Version() != VersionTLS13 || h.SelectedGroup != GroupX25519 || h.ALPN != "tds/8.0" || len(h.Extensions) != 3 {
			t.Fatalf("%+v", h)
		}
		if e, ok := h.Extension(ExtALPN); !ok || !bytes.Equal(e.Data, alpn.Data) {
			t.Fatal("Extension(ALPN)")
		}
	})
	t.Run("no extensions", func(t *testing.T) {
		h, err := ParseServerHello(buildServerHello(t, VersionTLS11, nil, 0x002F, nil))
		if err != nil || h.Version() != VersionTLS11 || h.Extensions != nil {
			t.Fatalf("%+v, %v", h, err)
		}
	})
	bad := []struct {
		name string
		ext  Extension
	}{
		{"supported_versions", Extension{ExtSupportedVersions, []byte{3}}},
		{"supported_versions", Extension{ExtSupportedVersions, []byte{3, 4, 0}}},
		{"key_share", Extension{ExtKeyShare, []byte{0, 29, 0, 0}}},
		{"application_layer_protocol_negotiation", Extension{ExtALPN, []byte{0, 6, 2, 'h', '2', 2, 'h', '3'}}},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.name, func(t *testing.T) {
			_, err := ParseServerHello(buildServerHello(t, VersionTLS12, nil, 0x1301, []Extension{tt.ext}))
			if !errors.Is(err, ErrMalformed) || !bytes.Contains([]byte(err.Error()), []byte(tt.name)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("HelloRetryRequest key_share is the group alone", func(t *testing.T) {
		h, err := ParseServerHello(buildServerHello(t, VersionTLS12, helloRetryRequestRandom, 0x1301,
			[]Extension{sv, {ExtKeyShare, []byte{0, 24}}}))
		if err != nil || !h.IsHelloRetryRequest() || h.SelectedGroup != GroupSecp384r1 {
			t.Fatalf("%+v, %v", h, err)
		}
	})
	t.Run("downgrade sentinels", func(t *testing.T) {
		for _, tt := range []struct {
			tail string
			want uint16
		}{{"DOWNGRD\x01", VersionTLS12}, {"DOWNGRD\x00", VersionTLS11}, {"DOWNGRD\x02", 0}} {
			random := append(make([]byte, 24), tt.tail...)
			h, err := ParseServerHello(buildServerHello(t, VersionTLS12, random, 0xC02F, nil))
			if err != nil || h.DowngradeSentinel() != tt.want {
				t.Fatalf("%q: %x, %v", tt.tail, h.DowngradeSentinel(), err)
			}
		}
	})
	t.Run("wrong type", func(t *testing.T) {
		raw := buildClientHello(t, helloSpec{})
		if _, err := ParseServerHello(raw); !errors.Is(err, ErrUnexpectedMessage) {
			t.Fatalf("err = %v", err)
		}
	})
}

func FuzzParseServerHello(f *testing.F) {
	f.Add(firstHandshake(f, "tls12-dhe-openssl30-s2c.bin", ServerToClient, HandshakeServerHello).Raw)
	f.Add(firstHandshake(f, "tls10-openssl30-s2c.bin", ServerToClient, HandshakeServerHello).Raw)
	f.Add(firstHandshake(f, "tls13-hrr-openssl30-s2c.bin", ServerToClient, HandshakeServerHello).Raw)
	f.Add(buildServerHello(f, VersionTLS12, nil, 0x1301, []Extension{{ExtSupportedVersions, []byte{3, 4}}, {ExtALPN, []byte{0, 3, 2, 'h', '2'}}}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := ParseServerHello(raw)
		if err != nil {
			return
		}
		h.Version()
		h.IsHelloRetryRequest()
		h.DowngradeSentinel()
		if !bytes.Equal(h.Raw, raw) || len(h.Random) != 32 {
			t.Fatal("Raw or Random")
		}
	})
}

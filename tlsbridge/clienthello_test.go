package tlsbridge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// helloSpec describes a ClientHello for buildClientHello.
type helloSpec struct {
	version uint16
	suites  []uint16
	exts    []Extension
	noExts  bool // omit the extensions block entirely (SSL 3.0 / TLS 1.0 style)
}

// buildClientHello encodes a ClientHello message (RFC 8446 §4.1.2).
func buildClientHello(t testing.TB, h helloSpec) []byte {
	t.Helper()
	if h.version == 0 {
		h.version = VersionTLS12
	}
	if h.suites == nil {
		h.suites = []uint16{0x1301, 0xC02F}
	}
	var b cryptobyte.Builder
	b.AddUint8(uint8(HandshakeClientHello))
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(h.version)
		b.AddBytes(make([]byte, 32))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(bytes.Repeat([]byte{7}, 32)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range h.suites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		if h.noExts {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range h.exts {
				b.AddUint16(e.Type)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
			}
		})
	})
	raw, err := b.Bytes()
	if err != nil {
		t.Fatalf("buildClientHello: %v", err)
	}
	return raw
}

// ext builds an extension body from a builder function.
func ext(typ uint16, f func(b *cryptobyte.Builder)) Extension {
	var b cryptobyte.Builder
	f(&b)
	return Extension{Type: typ, Data: b.BytesOrPanic()}
}

func u16list(vs ...uint16) func(b *cryptobyte.Builder) {
	return func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, v := range vs {
				b.AddUint16(v)
			}
		})
	}
}

func TestParseClientHelloFixtures(t *testing.T) {
	// Expected values were read from the same bytes by tshark 4.0
	// (tls.handshake.extensions_server_name, _alpn_str,
	// .extensions.supported_version, _key_share_group, _ec_point_format).
	tests := []struct {
		fixture        string
		serverName     string
		alpn           []string
		versions       []uint16
		keyShares      []uint16
		pointFormats   []uint8
		sessionIDLen   int
		highest        uint16
		offered        []uint16
		sigAlgsCertLen int
	}{
		{"clienthello-go126.bin", "sql.example.com", nil, []uint16{0x0304, 0x0303}, []uint16{4588, 29}, []uint8{0}, 32, 0x0304, []uint16{0x0304, 0x0303}, 12},
		{"clienthello-go126-strict.bin", "sql.example.com", []string{"tds/8.0"}, []uint16{0x0304, 0x0303}, []uint16{4588, 29}, []uint8{0}, 32, 0x0304, []uint16{0x0304, 0x0303}, 12},
		{"clienthello-utls-chrome133.bin", "www.example.com", []string{"h2", "http/1.1"}, []uint16{0x3a3a, 0x0304, 0x0303}, []uint16{6682, 4588, 29}, []uint8{0}, 32, 0x0304, []uint16{0x0304, 0x0303}, 0},
		{"tls10-openssl30-c2s.bin", "", nil, nil, nil, []uint8{0, 1, 2}, 0, 0x0301, []uint16{0x0301}, 0},
		{"tls12-dhe-openssl30-c2s.bin", "db.example.com", nil, nil, nil, nil, 0, 0x0303, []uint16{0x0303, 0x0302, 0x0301}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			m := firstHandshake(t, tt.fixture, ClientToServer, HandshakeClientHello)
			c, err := ParseClientHello(m.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if c.ServerName != tt.serverName {
				t.Errorf("ServerName %q, want %q", c.ServerName, tt.serverName)
			}
			if !slices.Equal(c.ALPN, tt.alpn) {
				t.Errorf("ALPN %q, want %q", c.ALPN, tt.alpn)
			}
			if !slices.Equal(c.SupportedVersions, tt.versions) {
				t.Errorf("SupportedVersions %x, want %x", c.SupportedVersions, tt.versions)
			}
			if !slices.Equal(c.KeyShareGroups, tt.keyShares) {
				t.Errorf("KeyShareGroups %v, want %v", c.KeyShareGroups, tt.keyShares)
			}
			if !bytes.Equal(c.ECPointFormats, tt.pointFormats) {
				t.Errorf("ECPointFormats %v, want %v", c.ECPointFormats, tt.pointFormats)
			}
			if len(c.SessionID) != tt.sessionIDLen || len(c.Random) != 32 {
				t.Errorf("SessionID %d bytes, Random %d bytes", len(c.SessionID), len(c.Random))
			}
			if got := c.HighestVersion(); got != tt.highest {
				t.Errorf("HighestVersion %s, want %s", VersionName(got), VersionName(tt.highest))
			}
			if got := c.OfferedVersions(); !slices.Equal(got, tt.offered) {
				t.Errorf("OfferedVersions %x, want %x", got, tt.offered)
			}
			if len(c.SignatureAlgorithmsCert) != tt.sigAlgsCertLen {
				t.Errorf("SignatureAlgorithmsCert %x", c.SignatureAlgorithmsCert)
			}
			if !bytes.Equal(c.Raw, m.Raw) {
				t.Error("Raw is not the message")
			}
		})
	}
}

// TestParseClientHelloLiveGo captures the first flight of a crypto/tls
// client over net.Pipe and checks that what it was configured to send is
// what the parser reads.
func TestParseClientHelloLiveGo(t *testing.T) {
	cfg := &tls.Config{
		ServerName:   "sql01.contoso.test",
		NextProtos:   []string{"tds/8.0", "h2"},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
	}
	raw := captureClientHello(t, cfg)
	s := NewStream(ClientToServer)
	evs, err := s.Feed(raw)
	if err != nil || len(evs) != 1 || evs[0].Kind != EventHandshake {
		t.Fatalf("events %v, %v", summary(evs), err)
	}
	c, err := ParseClientHello(evs[0].Handshake.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != cfg.ServerName || !slices.Equal(c.ALPN, cfg.NextProtos) {
		t.Errorf("ServerName %q ALPN %q", c.ServerName, c.ALPN)
	}
	if !c.Offers(VersionTLS13) || !c.Offers(VersionTLS12) || c.Offers(VersionTLS11) {
		t.Errorf("OfferedVersions %x", c.OfferedVersions())
	}
	for _, s := range cfg.CipherSuites {
		if !c.OffersCipherSuite(s) {
			t.Errorf("suite %s missing from %x", CipherSuiteName(s), c.CipherSuites)
		}
	}
	if !c.OffersCipherSuite(0x1301) { // TLS 1.3 suites are always offered
		t.Errorf("no TLS_AES_128_GCM_SHA256 in %x", c.CipherSuites)
	}
	if !slices.Contains(c.SignatureAlgorithms, 0x0804) || len(c.SupportedGroups) == 0 || len(c.KeyShareGroups) == 0 {
		t.Errorf("sigalgs %x groups %x shares %x", c.SignatureAlgorithms, c.SupportedGroups, c.KeyShareGroups)
	}
	if !bytes.Equal(c.Raw, raw[RecordHeaderLen:]) {
		t.Error("Raw differs from the captured record body")
	}
}

// captureClientHello returns the first record a crypto/tls client sends.
func captureClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	cc, sc := net.Pipe()
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(cc, cfg).Handshake() // fails once sc closes
	}()
	hdr := make([]byte, RecordHeaderLen)
	if _, err := io.ReadFull(sc, hdr); err != nil {
		t.Fatal(err)
	}
	h, err := ParseRecordHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, h.Length)
	if _, err := io.ReadFull(sc, body); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	cc.Close()
	<-done
	return append(hdr, body...)
}

func TestParseClientHelloRoundTrip(t *testing.T) {
	exts := []Extension{
		{Type: 0x0a0a, Data: nil}, // GREASE
		ext(ExtServerName, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint8(0)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte("db.example.com")) })
			})
		}),
		ext(ExtSupportedGroups, u16list(0x2a2a, GroupX25519, GroupSecp256r1, GroupFFDHE2048)),
		ext(ExtECPointFormats, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		}),
		ext(ExtSignatureAlgorithms, u16list(0x0401, 0x0804, 0x0201)),
		ext(ExtSignatureAlgorithmsCert, u16list(0x0101)),
		ext(ExtALPN, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, p := range []string{"tds/8.0", "h2"} {
					b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
				}
			})
		}),
		ext(ExtSupportedVersions, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16(0x1a1a)
				b.AddUint16(VersionTLS13)
				b.AddUint16(VersionTLS12)
			})
		}),
		ext(ExtKeyShare, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16(GroupX25519)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
			})
		}),
		{Type: 0x1234, Data: []byte("unknown, kept raw")},
	}
	raw := buildClientHello(t, helloSpec{version: VersionTLS12, suites: []uint16{0x3a3a, 0x1301, 0xC02F}, exts: exts})
	c, err := ParseClientHello(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Extensions) != len(exts) {
		t.Fatalf("%d extensions, want %d", len(c.Extensions), len(exts))
	}
	for i, e := range c.Extensions {
		if e.Type != exts[i].Type || !bytes.Equal(e.Data, exts[i].Data) {
			t.Errorf("extension %d: %v, want %v", i, e, exts[i])
		}
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ServerName", c.ServerName, "db.example.com"},
		{"SupportedGroups", c.SupportedGroups, []uint16{0x2a2a, GroupX25519, GroupSecp256r1, GroupFFDHE2048}},
		{"ECPointFormats", []uint8(c.ECPointFormats), []uint8{0}},
		{"SignatureAlgorithms", c.SignatureAlgorithms, []uint16{0x0401, 0x0804, 0x0201}},
		{"SignatureAlgorithmsCert", c.SignatureAlgorithmsCert, []uint16{0x0101}},
		{"ALPN", c.ALPN, []string{"tds/8.0", "h2"}},
		{"SupportedVersions", c.SupportedVersions, []uint16{0x1a1a, VersionTLS13, VersionTLS12}},
		{"OfferedVersions", c.OfferedVersions(), []uint16{VersionTLS13, VersionTLS12}},
		{"KeyShareGroups", c.KeyShareGroups, []uint16{GroupX25519}},
		{"CipherSuites", c.CipherSuites, []uint16{0x3a3a, 0x1301, 0xC02F}},
	}
	for _, ch := range checks {
		if !equalAny(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func equalAny(a, b any) bool {
	switch a := a.(type) {
	case string:
		return a == b.(string)
	case []uint16:
		return slices.Equal(a, b.([]uint16))
	case []uint8:
		return slices.Equal(a, b.([]uint8))
	case []string:
		return slices.Equal(a, b.([]string))
	}
	return false
}

func TestParseClientHelloThousandExtensions(t *testing.T) {
	exts := make([]Extension, 0, 1000)
	for i := range 1000 {
		exts = append(exts, Extension{Type: uint16(0x1000 + i), Data: []byte{byte(i)}})
	}
	exts = append(exts, ext(ExtSignatureAlgorithms, u16list(0x0403)))
	raw := buildClientHello(t, helloSpec{exts: exts})
	c, err := ParseClientHello(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Extensions) != 1001 || c.Extensions[999].Type != 0x1000+999 || !slices.Equal(c.SignatureAlgorithms, []uint16{0x0403}) {
		t.Fatalf("%d extensions, sigalgs %x", len(c.Extensions), c.SignatureAlgorithms)
	}
	// JA4 caps the count at 99.
	if got := c.JA4(); !strings.HasPrefix(got, "t12i0299") {
		t.Errorf("JA4 %s", got)
	}
}

func TestParseClientHelloMalformedExtensions(t *testing.T) {
	tests := []struct {
		name string
		ext  Extension
	}{
		{"server_name", Extension{ExtServerName, []byte{0, 5, 0, 0, 9, 'a'}}},
		{"server_name", Extension{ExtServerName, nil}},
		{"supported_groups", Extension{ExtSupportedGroups, []byte{0, 3, 0, 29, 0}}},
		{"supported_groups", Extension{ExtSupportedGroups, []byte{0, 0}}},
		{"ec_point_formats", Extension{ExtECPointFormats, []byte{0}}},
		{"signature_algorithms", Extension{ExtSignatureAlgorithms, []byte{0, 2, 4, 1, 9}}},
		{"signature_algorithms_cert", Extension{ExtSignatureAlgorithmsCert, []byte{0, 1, 4}}},
		{"application_layer_protocol_negotiation", Extension{ExtALPN, []byte{0, 3, 0, 'h', '2'}}},
		{"application_layer_protocol_negotiation", Extension{ExtALPN, []byte{0, 3, 5, 'h', '2'}}},
		{"supported_versions", Extension{ExtSupportedVersions, []byte{3, 3, 4, 3}}},
		{"key_share", Extension{ExtKeyShare, []byte{0, 4, 0, 29, 0, 0}}},
		{"key_share", Extension{ExtKeyShare, []byte{0, 6, 0, 29, 0, 32, 1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := buildClientHello(t, helloSpec{exts: []Extension{{Type: 0x1234}, tt.ext}})
			_, err := ParseClientHello(raw)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("error %q does not name the extension %s", err, tt.name)
			}
		})
	}
}

func TestParseClientHelloStructure(t *testing.T) {
	good := buildClientHello(t, helloSpec{exts: []Extension{{Type: 0x1234}}})
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"not a ClientHello", hsMsg(HandshakeServerHello, good[4:]), ErrUnexpectedMessage},
		{"header length mismatch", good[:len(good)-1], ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"duplicate extension", buildClientHello(t, helloSpec{exts: []Extension{{Type: 0x1234}, {Type: 0x1234}}}), ErrMalformed},
		{"odd cipher suites", hsMsg(HandshakeClientHello, append([]byte{3, 3}, append(make([]byte, 33), 0, 3, 0, 1, 2, 1, 0)...)), ErrMalformed},
		{"trailing bytes", hsMsg(HandshakeClientHello, append(append([]byte{}, good[4:]...), 0)), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseClientHello(tt.raw); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("GREASE may repeat", func(t *testing.T) {
		raw := buildClientHello(t, helloSpec{exts: []Extension{{Type: 0x0a0a}, {Type: 0x0a0a}}})
		if _, err := ParseClientHello(raw); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no extensions block", func(t *testing.T) {
		c, err := ParseClientHello(buildClientHello(t, helloSpec{version: VersionTLS10, noExts: true}))
		if err != nil || c.Extensions != nil || !slices.Equal(c.OfferedVersions(), []uint16{VersionTLS10}) {
			t.Fatalf("%+v, %v", c, err)
		}
	})
	t.Run("every truncation fails cleanly", func(t *testing.T) {
		m := firstHandshake(t, "clienthello-utls-chrome133.bin", ClientToServer, HandshakeClientHello)
		for i := range len(m.Raw) {
			if _, err := ParseClientHello(m.Raw[:i]); err == nil {
				t.Fatalf("prefix of %d bytes parsed", i)
			}
			// With a header that agrees with the shorter body, parsing
			// either fails or stops at an extension boundary.
			if i >= 4 {
				fixed := hsMsg(HandshakeClientHello, m.Raw[4:i])
				if c, err := ParseClientHello(fixed); err == nil && len(c.Raw) != len(fixed) {
					t.Fatal("Raw length")
				}
			}
		}
	})
}

func TestOfferedVersions(t *testing.T) {
	tests := []struct {
		legacy    uint16
		supported []uint16
		want      []uint16
	}{
		{VersionTLS12, nil, []uint16{VersionTLS12, VersionTLS11, VersionTLS10}},
		{VersionTLS11, nil, []uint16{VersionTLS11, VersionTLS10}},
		{VersionTLS10, nil, []uint16{VersionTLS10}},
		{VersionSSL30, nil, []uint16{VersionSSL30}},
		{0x0200, nil, nil},
		// Without supported_versions a server must not pick TLS 1.3.
		{VersionTLS13, nil, []uint16{VersionTLS12, VersionTLS11, VersionTLS10}},
		{VersionTLS12, []uint16{0xdada, VersionTLS13}, []uint16{VersionTLS13}},
		{VersionTLS12, []uint16{VersionTLS12, VersionTLS11}, []uint16{VersionTLS12, VersionTLS11}},
	}
	for _, tt := range tests {
		t.Run(VersionName(tt.legacy), func(t *testing.T) {
			c := &ClientHello{LegacyVersion: tt.legacy, SupportedVersions: tt.supported}
			if got := c.OfferedVersions(); !slices.Equal(got, tt.want) {
				t.Fatalf("OfferedVersions = %x, want %x", got, tt.want)
			}
			var wantHigh uint16
			if len(tt.want) > 0 {
				wantHigh = slices.Max(tt.want)
			}
			if got := c.HighestVersion(); got != wantHigh {
				t.Fatalf("HighestVersion = %x, want %x", got, wantHigh)
			}
		})
	}
}

func FuzzParseClientHello(f *testing.F) {
	for _, name := range []string{"clienthello-go126.bin", "clienthello-go126-strict.bin", "clienthello-utls-chrome133.bin", "tls10-openssl30-c2s.bin", "tls13-hrr-openssl30-c2s.bin"} {
		f.Add(firstHandshake(f, name, ClientToServer, HandshakeClientHello).Raw)
	}
	f.Add(buildClientHello(f, helloSpec{noExts: true}))
	f.Add(buildClientHello(f, helloSpec{exts: []Extension{{Type: ExtALPN, Data: []byte{0, 3, 2, 'h', '2'}}}}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseClientHello(raw)
		if err != nil {
			if c != nil {
				t.Fatal("non-nil hello with error")
			}
			return
		}
		// Everything a parsed hello offers must be computable.
		c.OfferedVersions()
		c.HighestVersion()
		c.JA3()
		c.JA4()
		if !bytes.Equal(c.Raw, raw) {
			t.Fatal("Raw differs")
		}
	})
}

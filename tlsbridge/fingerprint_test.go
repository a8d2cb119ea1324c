package tlsbridge

import "testing"

// TestFingerprintFixtures checks JA3 and JA4 of captured ClientHellos
// against values computed independently of this package:
//
//   - JA3 (string and MD5): tshark 4.0.17 (Debian 12), fields
//     tls.handshake.ja3_full and tls.handshake.ja3, run on a pcap that
//     wraps the fixture bytes in Ethernet/IPv4/TCP frames.
//   - JA4: a Python implementation of FoxIO's technical_details/JA4.md
//     (independent of this Go code) over tshark's PDML dissection of the
//     same pcap, taking signature algorithms only from extension 13 as
//     FoxIO's rust/ja4 does. See testdata/README.md.
//   - The uTLS HelloChrome_133 JA4 is also the published fingerprint of
//     Chrome 133 and later, t13d1516h2_8daaf6152771_d8a2da3f94cd (FoxIO's
//     ja4db; curl_cffi's chrome136 golden value).
func TestFingerprintFixtures(t *testing.T) {
	tests := []struct {
		fixture     string
		ja3, ja3md5 string
		ja4, ja4Raw string
	}{
		{
			fixture: "clienthello-go126.bin",
			ja3:     "771,49195-49199-49196-49200-52393-52392-49161-49171-49162-49172-4865-4866-4867,0-11-65281-23-18-5-10-13-50-43-51,4588-4587-4589-29-23-24-25,0",
			ja3md5:  "9b7dcdf3f997f1fb7b4409c94cb7ef36",
			ja4:     "t13d131100_f57a46bbacb6_ab7e3b40a677",
			ja4Raw:  "t13d131100_1301,1302,1303,c009,c00a,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0017,002b,0032,0033,ff01_0804,0403,0807,0805,0806,0401,0501,0601,0503,0603",
		},
		{
			fixture: "clienthello-go126-strict.bin", // ALPN tds/8.0, as TDS 8.0 strict sends
			ja3:     "771,49195-49199-49196-49200-52393-52392-49161-49171-49162-49172-4865-4866-4867,0-11-65281-23-18-5-10-13-50-16-43-51,4588-4587-4589-29-23-24-25,0",
			ja3md5:  "03117a8ed39ef02427ebbc39f121275c",
			ja4:     "t13d1312t0_f57a46bbacb6_ab7e3b40a677",
		},
		{
			fixture: "clienthello-utls-chrome133.bin",
			ja3:     "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,35-23-65037-27-16-45-0-5-11-18-65281-10-17613-43-13-51,4588-29-23-24,0",
			ja3md5:  "d446f24499a4ae2fb772d1e4ac9a207a",
			ja4:     "t13d1516h2_8daaf6152771_d8a2da3f94cd",
			ja4Raw:  "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_0403,0804,0401,0503,0805,0501,0806,0601",
		},
		{
			fixture: "tls12-dhe-openssl30-c2s.bin", // no supported_groups, no ec_point_formats
			ja3:     "771,158-255,0-35-22-23-13,,",
			ja3md5:  "bfa18b1f40827f028ed9d6133d494e0f",
			ja4:     "t12d020500_a25efb179806_847bbcdea70d",
		},
		{
			fixture: "tls10-openssl30-c2s.bin", // no supported_versions, no SNI, no signature_algorithms
			ja3:     "769,49162-49172-57-49161-49171-51-53-47-255,11-10-35-22-23,29-23-30-25-24,0-1-2",
			ja3md5:  "53652b2730564404986852cde177b6d9",
			ja4:     "t10i090500_c491f621fb4c_195413a0cc0f",
			ja4Raw:  "t10i090500_002f,0033,0035,0039,00ff,c009,c00a,c013,c014_000a,000b,0016,0017,0023",
		},
		{
			fixture: "tls13-hrr-openssl30-c2s.bin",
			ja3:     "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-22-23-13-43-45-51,29-23-30-25-24-256-257-258-259-260,0-1-2",
			ja3md5:  "a3afc2c46ba4a7d7fbe1cfb7a3031c2f",
			ja4:     "t13d311000_e8f1e7e78f70_1f22a2ca17c4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			c, err := ParseClientHello(firstHandshake(t, tt.fixture, ClientToServer, HandshakeClientHello).Raw)
			if err != nil {
				t.Fatal(err)
			}
			full, sum := c.JA3()
			if full != tt.ja3 || sum != tt.ja3md5 {
				t.Errorf("JA3\n got %s %s\nwant %s %s", full, sum, tt.ja3, tt.ja3md5)
			}
			if got := c.JA4(); got != tt.ja4 {
				t.Errorf("JA4 = %s, want %s\nJA4_r = %s", got, tt.ja4, c.JA4Raw())
			}
			if tt.ja4Raw != "" && c.JA4Raw() != tt.ja4Raw {
				t.Errorf("JA4_r\n got %s\nwant %s", c.JA4Raw(), tt.ja4Raw)
			}
		})
	}
}

// TestJA4SpecExample uses the worked example of FoxIO's JA4.md: its lists,
// its raw string and its hashes.
func TestJA4SpecExample(t *testing.T) {
	extTypes := []uint16{0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015}
	c := &ClientHello{
		LegacyVersion:       VersionTLS12,
		CipherSuites:        []uint16{0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		SupportedVersions:   []uint16{0x7a7a, VersionTLS13, VersionTLS12},
		SignatureAlgorithms: []uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601},
		ALPN:                []string{"h2", "http/1.1"},
	}
	c.Extensions = append(c.Extensions, Extension{Type: 0x0a0a})
	for _, e := range extTypes {
		c.Extensions = append(c.Extensions, Extension{Type: e})
	}
	if got, want := c.JA4(), "t13d1516h2_8daaf6152771_e5627efa2ab1"; got != want {
		t.Errorf("JA4 = %s, want %s", got, want)
	}
	if got, want := c.JA4Raw(), "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"; got != want {
		t.Errorf("JA4_r\n got %s\nwant %s", got, want)
	}
	// "If there are no signature algorithms ... the string ends without an
	// underscore": 0005,...,ff01 = 6d807ffa2a79.
	c.SignatureAlgorithms = nil
	if got, want := c.JA4(), "t13d1516h2_8daaf6152771_6d807ffa2a79"; got != want {
		t.Errorf("JA4 without signature algorithms = %s, want %s", got, want)
	}
	// No ciphers and no extensions: twelve zeros each.
	empty := &ClientHello{LegacyVersion: VersionTLS12, Extensions: []Extension{{Type: ExtServerName}}}
	if got, want := empty.JA4(), "t12d000100_000000000000_000000000000"; got != want {
		t.Errorf("empty JA4 = %s, want %s", got, want)
	}
}

func TestJA4ALPN(t *testing.T) {
	// Cases from JA4.md, "ALPN Extension Value".
	tests := []struct {
		alpn []string
		want string
	}{
		{nil, "00"},
		{[]string{""}, "00"},
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1", "h2"}, "h1"},
		{[]string{"tds/8.0"}, "t0"},
		{[]string{"h"}, "hh"},
		{[]string{"\xab"}, "ab"},
		{[]string{"\xab\xcd"}, "ad"},
		{[]string{"\x30\xab"}, "3b"},
		{[]string{"\x30\x31\xab\xcd"}, "3d"},
		{[]string{"\x30\xab\xcd\x31"}, "01"},
	}
	for _, tt := range tests {
		c := &ClientHello{ALPN: tt.alpn}
		if got := c.ja4ALPN(); got != tt.want {
			t.Errorf("ALPN %q: %q, want %q", tt.alpn, got, tt.want)
		}
	}
}

func TestJA4Version(t *testing.T) {
	for v, want := range map[uint16]string{0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2", 0xfeff: "d1", 0xfefd: "d2", 0xfefc: "d3", 0x1234: "00"} {
		if got := ja4Version(v); got != want {
			t.Errorf("ja4Version(%x) = %s, want %s", v, got, want)
		}
	}
}

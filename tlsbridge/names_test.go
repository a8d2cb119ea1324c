package tlsbridge

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestIsGREASE(t *testing.T) {
	n := 0
	for v := range 1 << 16 {
		if IsGREASE(uint16(v)) {
			n++
			if v&0x0f0f != 0x0a0a || v>>8 != v&0xff {
				t.Errorf("IsGREASE(0x%04x)", v)
			}
		}
	}
	if n != 16 {
		t.Fatalf("%d GREASE values, want 16 (RFC 8701 §2)", n)
	}
}

func TestCipherSuiteNames(t *testing.T) {
	if len(cipherSuites) < 150 {
		t.Fatalf("only %d suites", len(cipherSuites))
	}
	tests := []struct {
		id   uint16
		name string
		kx   string
	}{
		{0x1301, "TLS_AES_128_GCM_SHA256", "TLS13"},
		{0x1303, "TLS_CHACHA20_POLY1305_SHA256", "TLS13"},
		{0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE"},
		{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE"},
		{0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA", "DHE"},
		{0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE"},
		{0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE"},
		{0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "RSA"},
		{0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RSA"},
		{0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", "RSA"},
		{0xC05C, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256", "ECDHE"},
		{0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", "DH_anon"},
		{0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "ECDH_anon"},
		{0x0030, "TLS_DH_DSS_WITH_AES_128_CBC_SHA", "DH"},
		{0xC004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", "ECDH"},
		{0x008C, "TLS_PSK_WITH_AES_128_CBC_SHA", "PSK"},
		{0x0090, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA", "DHE_PSK"},
		{0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8", "DHE_PSK"},
		{0xC035, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA", "ECDHE_PSK"},
		{0x0094, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA", "RSA_PSK"},
		{0xC01D, "TLS_SRP_SHA_WITH_AES_128_CBC_SHA", "SRP"},
		{0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV", ""},
		{0x5600, "TLS_FALLBACK_SCSV", ""},
		{0x0000, "TLS_NULL_WITH_NULL_NULL", "NULL"},
		{0xC100, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC", "GOST"},
		{0x00C6, "TLS_SM4_GCM_SM3", "TLS13"},
		{0x3A3A, "GREASE", ""},
		{0x0066, "0x0066", ""}, // pre-standard DHE_DSS RC4, never registered
		{0xFFFF, "0xFFFF", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CipherSuiteName(tt.id); got != tt.name {
				t.Errorf("CipherSuiteName(0x%04X) = %q", tt.id, got)
			}
			if got := SuiteKeyExchange(tt.id); got != tt.kx {
				t.Errorf("SuiteKeyExchange(0x%04X) = %q, want %q", tt.id, got, tt.kx)
			}
		})
	}
	for in, want := range map[string]uint16{
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
		"ecdhe_rsa_with_aes_128_gcm_sha256":     0xC02F,
		"tls_aes_256_gcm_sha384":                0x1302,
		"TLS_DH_anon_WITH_AES_128_CBC_SHA":      0x0034,
		"0x009e":                                0x009E,
	} {
		if got, ok := CipherSuiteByName(in); !ok || got != want {
			t.Errorf("CipherSuiteByName(%q) = 0x%04X, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "ECDHE-RSA-AES128-GCM-SHA256", "0x", "0x10000", "TLS_"} {
		if _, ok := CipherSuiteByName(in); ok {
			t.Errorf("CipherSuiteByName(%q) accepted", in)
		}
	}
}

// TestCipherSuiteNamesOpenSSL checks every suite OpenSSL 3.0 knows against
// the table: `openssl ciphers -V -stdname` prints the code and the IANA
// name side by side.
func TestCipherSuiteNamesOpenSSL(t *testing.T) {
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0").Output()
	if err != nil {
		t.Skipf("openssl ciphers: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "          0x13,0x02 - TLS_AES_256_GCM_SHA384  - TLS_AES_256_GCM_SHA384 TLSv1.3 ..."
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "0x") {
			continue
		}
		hi, err1 := strconv.ParseUint(f[0][2:4], 16, 8)
		lo, err2 := strconv.ParseUint(f[0][7:9], 16, 8)
		if err1 != nil || err2 != nil {
			t.Fatalf("cannot read %q", sc.Text())
		}
		id := uint16(hi<<8 | lo)
		if got := CipherSuiteName(id); got != f[2] {
			t.Errorf("0x%04X: table %q, OpenSSL %q", id, got, f[2])
		}
		n++
	}
	if n < 100 {
		t.Fatalf("only %d suites read from OpenSSL", n)
	}
}

func TestVersionNames(t *testing.T) {
	for v, want := range map[uint16]string{
		0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3",
		0x7F1C: "TLS 1.3 draft 28", 0x0A0A: "GREASE", 0x1234: "0x1234", 0xFEFD: "DTLS 1.2",
	} {
		if got := VersionName(v); got != want {
			t.Errorf("VersionName(0x%04X) = %q, want %q", v, got, want)
		}
	}
	for in, want := range map[string]uint16{
		"1.0": VersionTLS10, "1.1": VersionTLS11, "1.2": VersionTLS12, "1.3": VersionTLS13,
		"TLS1.2": VersionTLS12, "tls 1.3": VersionTLS13, "TLSv1.1": VersionTLS11, "tls12": VersionTLS12,
		"ssl3": VersionSSL30, "SSL 3.0": VersionSSL30, "0x0303": VersionTLS12,
	} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = 0x%04X, %v; want 0x%04X", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1.4", "tls", "2"} {
		if _, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) accepted", in)
		}
	}
}

func TestOtherNames(t *testing.T) {
	checks := []struct{ got, want string }{
		{ExtensionName(0), "server_name"},
		{ExtensionName(16), "application_layer_protocol_negotiation"},
		{ExtensionName(43), "supported_versions"},
		{ExtensionName(0xFF01), "renegotiation_info"},
		{ExtensionName(0x5A5A), "GREASE"},
		{ExtensionName(0x9999), "0x9999"},
		{GroupName(29), "x25519"},
		{GroupName(23), "secp256r1"},
		{GroupName(0x11EC), "X25519MLKEM768"},
		{GroupName(0x0100), "ffdhe2048"},
		{GroupName(0x2A2A), "GREASE"},
		{SignatureSchemeName(0x0401), "rsa_pkcs1_sha256"},
		{SignatureSchemeName(0x0804), "rsa_pss_rsae_sha256"},
		{SignatureSchemeName(0x0807), "ed25519"},
		{SignatureSchemeName(0x0101), "rsa_pkcs1_md5"},
		{SignatureSchemeName(0x0201), "rsa_pkcs1_sha1"},
		{SignatureSchemeName(0x0301), "rsa_pkcs1_sha224"},
		{SignatureSchemeName(0x0303), "ecdsa_sha224"},
		{HandshakeType(11).String(), "Certificate"},
		{HandshakeType(99).String(), "HandshakeType(99)"},
		{ContentType(22).String(), "handshake"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

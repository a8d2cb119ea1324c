package tlsbridge

import (
	"fmt"
	"strconv"
	"strings"
)

// hex16 formats an unknown code point the way every name function here
// falls back to: "0x" and four upper-case hex digits.
func hex16(v uint16) string { return fmt.Sprintf("0x%04X", v) }

// IsGREASE reports whether v is one of the sixteen GREASE values of
// RFC 8701 §2 (0x0A0A, 0x1A1A, ... 0xFAFA). Clients put them in cipher
// suite, extension, group, version and signature lists to keep servers
// tolerant of unknown values; fingerprints ignore them.
func IsGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

// ---- TLS versions ----

// Protocol versions as they appear on the wire (RFC 8446 §4.2.1, RFC 5246 §A.1).
const (
	VersionSSL30 uint16 = 0x0300
	VersionTLS10 uint16 = 0x0301
	VersionTLS11 uint16 = 0x0302
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// VersionName returns "SSL 3.0", "TLS 1.0" ... "TLS 1.3", "DTLS 1.x",
// "SSL 2.0", "TLS 1.3 draft N" for 0x7Fxx, "GREASE", or "0xXXXX".
func VersionName(v uint16) string {
	switch v {
	case 0x0002:
		return "SSL 2.0"
	case VersionSSL30:
		return "SSL 3.0"
	case VersionTLS10:
		return "TLS 1.0"
	case VersionTLS11:
		return "TLS 1.1"
	case VersionTLS12:
		return "TLS 1.2"
	case VersionTLS13:
		return "TLS 1.3"
	case 0xFEFF:
		return "DTLS 1.0"
	case 0xFEFD:
		return "DTLS 1.2"
	case 0xFEFC:
		return "DTLS 1.3"
	}
	if IsGREASE(v) {
		return "GREASE"
	}
	if v>>8 == 0x7F {
		// Pre-RFC 8446 drafts advertised 0x7F00 | draft number.
		return fmt.Sprintf("TLS 1.3 draft %d", v&0xff)
	}
	return hex16(v)
}

// ParseVersion reads a TLS version as a user writes it: "1.2", "TLS1.2",
// "tls 1.2", "TLSv1.2", "tls12", "12", "ssl3", "3.0" (SSL 3.0), or a hex
// code ("0x0303").
func ParseVersion(s string) (uint16, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "tls")
	n = strings.TrimPrefix(n, "v")
	n = strings.TrimSpace(n)
	switch n {
	case "1.0", "10", "1":
		return VersionTLS10, nil
	case "1.1", "11":
		return VersionTLS11, nil
	case "1.2", "12":
		return VersionTLS12, nil
	case "1.3", "13":
		return VersionTLS13, nil
	}
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "") {
	case "ssl3", "ssl3.0", "sslv3", "3.0", "s3":
		return VersionSSL30, nil
	}
	if strings.HasPrefix(n, "0x") {
		if v, err := strconv.ParseUint(n[2:], 16, 16); err == nil {
			return uint16(v), nil
		}
	}
	return 0, fmt.Errorf("tlsbridge: unknown TLS version %q (want 1.0, 1.1, 1.2, 1.3 or ssl3)", s)
}

// ---- cipher suites ----

// cipherSuite is one row of the IANA "TLS Cipher Suites" registry.
type cipherSuite struct {
	id   uint16
	name string
}

// cipherSuites is the IANA "TLS Cipher Suites" registry
// (https://www.iana.org/assignments/tls-parameters), cross-checked against
// Wireshark 4.0's table (`tshark -G values`) and OpenSSL 3.0
// (`openssl ciphers -V -stdname`). Drafts that never reached the registry
// (0x0060-0x0066 EXPORT1024, 0xCC13-0xCC15 pre-RFC ChaCha20) are left out
// on purpose: their names collide with registered suites.
var cipherSuites = [...]cipherSuite{
	{0x0000, "TLS_NULL_WITH_NULL_NULL"},
	{0x0001, "TLS_RSA_WITH_NULL_MD5"},
	{0x0002, "TLS_RSA_WITH_NULL_SHA"},
	{0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"},
	{0x0004, "TLS_RSA_WITH_RC4_128_MD5"},
	{0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
	{0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"},
	{0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA"},
	{0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0009, "TLS_RSA_WITH_DES_CBC_SHA"},
	{0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x000B, "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA"},
	{0x000C, "TLS_DH_DSS_WITH_DES_CBC_SHA"},
	{0x000D, "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA"},
	{0x000E, "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x000F, "TLS_DH_RSA_WITH_DES_CBC_SHA"},
	{0x0010, "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA"},
	{0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"},
	{0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"},
	{0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5"},
	{0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"},
	{0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA"},
	{0x001A, "TLS_DH_anon_WITH_DES_CBC_SHA"},
	{0x001B, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"},
	{0x001E, "TLS_KRB5_WITH_DES_CBC_SHA"},
	{0x001F, "TLS_KRB5_WITH_3DES_EDE_CBC_SHA"},
	{0x0020, "TLS_KRB5_WITH_RC4_128_SHA"},
	{0x0021, "TLS_KRB5_WITH_IDEA_CBC_SHA"},
	{0x0022, "TLS_KRB5_WITH_DES_CBC_MD5"},
	{0x0023, "TLS_KRB5_WITH_3DES_EDE_CBC_MD5"},
	{0x0024, "TLS_KRB5_WITH_RC4_128_MD5"},
	{0x0025, "TLS_KRB5_WITH_IDEA_CBC_MD5"},
	{0x0026, "TLS_KRB5_EXPORT_WITH_DES_CBC_40_SHA"},
	{0x0027, "TLS_KRB5_EXPORT_WITH_RC2_CBC_40_SHA"},
	{0x0028, "TLS_KRB5_EXPORT_WITH_RC4_40_SHA"},
	{0x0029, "TLS_KRB5_EXPORT_WITH_DES_CBC_40_MD5"},
	{0x002A, "TLS_KRB5_EXPORT_WITH_RC2_CBC_40_MD5"},
	{0x002B, "TLS_KRB5_EXPORT_WITH_RC4_40_MD5"},
	{0x002C, "TLS_PSK_WITH_NULL_SHA"},
	{0x002D, "TLS_DHE_PSK_WITH_NULL_SHA"},
	{0x002E, "TLS_RSA_PSK_WITH_NULL_SHA"},
	{0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"},
	{0x0030, "TLS_DH_DSS_WITH_AES_128_CBC_SHA"},
	{0x0031, "TLS_DH_RSA_WITH_AES_128_CBC_SHA"},
	{0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"},
	{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
	{0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"},
	{0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"},
	{0x0036, "TLS_DH_DSS_WITH_AES_256_CBC_SHA"},
	{0x0037, "TLS_DH_RSA_WITH_AES_256_CBC_SHA"},
	{0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"},
	{0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
	{0x003A, "TLS_DH_anon_WITH_AES_256_CBC_SHA"},
	{0x003B, "TLS_RSA_WITH_NULL_SHA256"},
	{0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
	{0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
	{0x003E, "TLS_DH_DSS_WITH_AES_128_CBC_SHA256"},
	{0x003F, "TLS_DH_RSA_WITH_AES_128_CBC_SHA256"},
	{0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"},
	{0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0042, "TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0043, "TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0044, "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0046, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
	{0x0068, "TLS_DH_DSS_WITH_AES_256_CBC_SHA256"},
	{0x0069, "TLS_DH_RSA_WITH_AES_256_CBC_SHA256"},
	{0x006A, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"},
	{0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
	{0x006C, "TLS_DH_anon_WITH_AES_128_CBC_SHA256"},
	{0x006D, "TLS_DH_anon_WITH_AES_256_CBC_SHA256"},
	{0x0080, "TLS_GOSTR341094_WITH_28147_CNT_IMIT"},
	{0x0081, "TLS_GOSTR341001_WITH_28147_CNT_IMIT"},
	{0x0082, "TLS_GOSTR341094_WITH_NULL_GOSTR3411"},
	{0x0083, "TLS_GOSTR341001_WITH_NULL_GOSTR3411"},
	{0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
	{0x0085, "TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA"},
	{0x0086, "TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA"},
	{0x0087, "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA"},
	{0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"},
	{0x0089, "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA"},
	{0x008A, "TLS_PSK_WITH_RC4_128_SHA"},
	{0x008B, "TLS_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0x008C, "TLS_PSK_WITH_AES_128_CBC_SHA"},
	{0x008D, "TLS_PSK_WITH_AES_256_CBC_SHA"},
	{0x008E, "TLS_DHE_PSK_WITH_RC4_128_SHA"},
	{0x008F, "TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0x0090, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA"},
	{0x0091, "TLS_DHE_PSK_WITH_AES_256_CBC_SHA"},
	{0x0092, "TLS_RSA_PSK_WITH_RC4_128_SHA"},
	{0x0093, "TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0x0094, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA"},
	{0x0095, "TLS_RSA_PSK_WITH_AES_256_CBC_SHA"},
	{0x0096, "TLS_RSA_WITH_SEED_CBC_SHA"},
	{0x0097, "TLS_DH_DSS_WITH_SEED_CBC_SHA"},
	{0x0098, "TLS_DH_RSA_WITH_SEED_CBC_SHA"},
	{0x0099, "TLS_DHE_DSS_WITH_SEED_CBC_SHA"},
	{0x009A, "TLS_DHE_RSA_WITH_SEED_CBC_SHA"},
	{0x009B, "TLS_DH_anon_WITH_SEED_CBC_SHA"},
	{0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256"},
	{0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384"},
	{0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
	{0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
	{0x00A0, "TLS_DH_RSA_WITH_AES_128_GCM_SHA256"},
	{0x00A1, "TLS_DH_RSA_WITH_AES_256_GCM_SHA384"},
	{0x00A2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"},
	{0x00A3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"},
	{0x00A4, "TLS_DH_DSS_WITH_AES_128_GCM_SHA256"},
	{0x00A5, "TLS_DH_DSS_WITH_AES_256_GCM_SHA384"},
	{0x00A6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"},
	{0x00A7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384"},
	{0x00A8, "TLS_PSK_WITH_AES_128_GCM_SHA256"},
	{0x00A9, "TLS_PSK_WITH_AES_256_GCM_SHA384"},
	{0x00AA, "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256"},
	{0x00AB, "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384"},
	{0x00AC, "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256"},
	{0x00AD, "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384"},
	{0x00AE, "TLS_PSK_WITH_AES_128_CBC_SHA256"},
	{0x00AF, "TLS_PSK_WITH_AES_256_CBC_SHA384"},
	{0x00B0, "TLS_PSK_WITH_NULL_SHA256"},
	{0x00B1, "TLS_PSK_WITH_NULL_SHA384"},
	{0x00B2, "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256"},
	{0x00B3, "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384"},
	{0x00B4, "TLS_DHE_PSK_WITH_NULL_SHA256"},
	{0x00B5, "TLS_DHE_PSK_WITH_NULL_SHA384"},
	{0x00B6, "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256"},
	{0x00B7, "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384"},
	{0x00B8, "TLS_RSA_PSK_WITH_NULL_SHA256"},
	{0x00B9, "TLS_RSA_PSK_WITH_NULL_SHA384"},
	{0x00BA, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00BB, "TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00BC, "TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00BD, "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00BE, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00BF, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00C0, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x00C1, "TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x00C2, "TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x00C3, "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x00C4, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x00C5, "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x00C6, "TLS_SM4_GCM_SM3"},
	{0x00C7, "TLS_SM4_CCM_SM3"},
	{0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"},
	{0x1301, "TLS_AES_128_GCM_SHA256"},
	{0x1302, "TLS_AES_256_GCM_SHA384"},
	{0x1303, "TLS_CHACHA20_POLY1305_SHA256"},
	{0x1304, "TLS_AES_128_CCM_SHA256"},
	{0x1305, "TLS_AES_128_CCM_8_SHA256"},
	{0x1306, "TLS_AEGIS_256_SHA512"},
	{0x1307, "TLS_AEGIS_128L_SHA256"},
	{0x5600, "TLS_FALLBACK_SCSV"},
	{0xC001, "TLS_ECDH_ECDSA_WITH_NULL_SHA"},
	{0xC002, "TLS_ECDH_ECDSA_WITH_RC4_128_SHA"},
	{0xC003, "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA"},
	{0xC004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA"},
	{0xC005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA"},
	{0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"},
	{0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"},
	{0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"},
	{0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
	{0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
	{0xC00B, "TLS_ECDH_RSA_WITH_NULL_SHA"},
	{0xC00C, "TLS_ECDH_RSA_WITH_RC4_128_SHA"},
	{0xC00D, "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0xC00E, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA"},
	{0xC00F, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA"},
	{0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA"},
	{0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
	{0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
	{0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
	{0xC015, "TLS_ECDH_anon_WITH_NULL_SHA"},
	{0xC016, "TLS_ECDH_anon_WITH_RC4_128_SHA"},
	{0xC017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA"},
	{0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"},
	{0xC019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"},
	{0xC01A, "TLS_SRP_SHA_WITH_3DES_EDE_CBC_SHA"},
	{0xC01B, "TLS_SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0xC01C, "TLS_SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA"},
	{0xC01D, "TLS_SRP_SHA_WITH_AES_128_CBC_SHA"},
	{0xC01E, "TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA"},
	{0xC01F, "TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA"},
	{0xC020, "TLS_SRP_SHA_WITH_AES_256_CBC_SHA"},
	{0xC021, "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA"},
	{0xC022, "TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA"},
	{0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
	{0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
	{0xC025, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256"},
	{0xC026, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384"},
	{0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
	{0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
	{0xC029, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256"},
	{0xC02A, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384"},
	{0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
	{0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
	{0xC02D, "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256"},
	{0xC02E, "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384"},
	{0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
	{0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
	{0xC031, "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256"},
	{0xC032, "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384"},
	{0xC033, "TLS_ECDHE_PSK_WITH_RC4_128_SHA"},
	{0xC034, "TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0xC035, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA"},
	{0xC036, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA"},
	{0xC037, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256"},
	{0xC038, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384"},
	{0xC039, "TLS_ECDHE_PSK_WITH_NULL_SHA"},
	{0xC03A, "TLS_ECDHE_PSK_WITH_NULL_SHA256"},
	{0xC03B, "TLS_ECDHE_PSK_WITH_NULL_SHA384"},
	{0xC03C, "TLS_RSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC03D, "TLS_RSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC03E, "TLS_DH_DSS_WITH_ARIA_128_CBC_SHA256"},
	{0xC03F, "TLS_DH_DSS_WITH_ARIA_256_CBC_SHA384"},
	{0xC040, "TLS_DH_RSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC041, "TLS_DH_RSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC042, "TLS_DHE_DSS_WITH_ARIA_128_CBC_SHA256"},
	{0xC043, "TLS_DHE_DSS_WITH_ARIA_256_CBC_SHA384"},
	{0xC044, "TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC045, "TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC046, "TLS_DH_anon_WITH_ARIA_128_CBC_SHA256"},
	{0xC047, "TLS_DH_anon_WITH_ARIA_256_CBC_SHA384"},
	{0xC048, "TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC049, "TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC04A, "TLS_ECDH_ECDSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC04B, "TLS_ECDH_ECDSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC04C, "TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC04D, "TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC04E, "TLS_ECDH_RSA_WITH_ARIA_128_CBC_SHA256"},
	{0xC04F, "TLS_ECDH_RSA_WITH_ARIA_256_CBC_SHA384"},
	{0xC050, "TLS_RSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC051, "TLS_RSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC052, "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC053, "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC054, "TLS_DH_RSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC055, "TLS_DH_RSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC056, "TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256"},
	{0xC057, "TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384"},
	{0xC058, "TLS_DH_DSS_WITH_ARIA_128_GCM_SHA256"},
	{0xC059, "TLS_DH_DSS_WITH_ARIA_256_GCM_SHA384"},
	{0xC05A, "TLS_DH_anon_WITH_ARIA_128_GCM_SHA256"},
	{0xC05B, "TLS_DH_anon_WITH_ARIA_256_GCM_SHA384"},
	{0xC05C, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC05D, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC05E, "TLS_ECDH_ECDSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC05F, "TLS_ECDH_ECDSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC062, "TLS_ECDH_RSA_WITH_ARIA_128_GCM_SHA256"},
	{0xC063, "TLS_ECDH_RSA_WITH_ARIA_256_GCM_SHA384"},
	{0xC064, "TLS_PSK_WITH_ARIA_128_CBC_SHA256"},
	{0xC065, "TLS_PSK_WITH_ARIA_256_CBC_SHA384"},
	{0xC066, "TLS_DHE_PSK_WITH_ARIA_128_CBC_SHA256"},
	{0xC067, "TLS_DHE_PSK_WITH_ARIA_256_CBC_SHA384"},
	{0xC068, "TLS_RSA_PSK_WITH_ARIA_128_CBC_SHA256"},
	{0xC069, "TLS_RSA_PSK_WITH_ARIA_256_CBC_SHA384"},
	{0xC06A, "TLS_PSK_WITH_ARIA_128_GCM_SHA256"},
	{0xC06B, "TLS_PSK_WITH_ARIA_256_GCM_SHA384"},
	{0xC06C, "TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256"},
	{0xC06D, "TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384"},
	{0xC06E, "TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256"},
	{0xC06F, "TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384"},
	{0xC070, "TLS_ECDHE_PSK_WITH_ARIA_128_CBC_SHA256"},
	{0xC071, "TLS_ECDHE_PSK_WITH_ARIA_256_CBC_SHA384"},
	{0xC072, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC073, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC074, "TLS_ECDH_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC075, "TLS_ECDH_ECDSA_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC076, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC077, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC078, "TLS_ECDH_RSA_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC079, "TLS_ECDH_RSA_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC07A, "TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC07B, "TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC07C, "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC07D, "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC07E, "TLS_DH_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC07F, "TLS_DH_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC080, "TLS_DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC081, "TLS_DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC082, "TLS_DH_DSS_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC083, "TLS_DH_DSS_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC084, "TLS_DH_anon_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC085, "TLS_DH_anon_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC086, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC087, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC088, "TLS_ECDH_ECDSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC089, "TLS_ECDH_ECDSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC08A, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC08B, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC08C, "TLS_ECDH_RSA_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC08D, "TLS_ECDH_RSA_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC08E, "TLS_PSK_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC08F, "TLS_PSK_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC090, "TLS_DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC091, "TLS_DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC092, "TLS_RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256"},
	{0xC093, "TLS_RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384"},
	{0xC094, "TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC095, "TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC096, "TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC097, "TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC098, "TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC099, "TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC09A, "TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256"},
	{0xC09B, "TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384"},
	{0xC09C, "TLS_RSA_WITH_AES_128_CCM"},
	{0xC09D, "TLS_RSA_WITH_AES_256_CCM"},
	{0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM"},
	{0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM"},
	{0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8"},
	{0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8"},
	{0xC0A2, "TLS_DHE_RSA_WITH_AES_128_CCM_8"},
	{0xC0A3, "TLS_DHE_RSA_WITH_AES_256_CCM_8"},
	{0xC0A4, "TLS_PSK_WITH_AES_128_CCM"},
	{0xC0A5, "TLS_PSK_WITH_AES_256_CCM"},
	{0xC0A6, "TLS_DHE_PSK_WITH_AES_128_CCM"},
	{0xC0A7, "TLS_DHE_PSK_WITH_AES_256_CCM"},
	{0xC0A8, "TLS_PSK_WITH_AES_128_CCM_8"},
	{0xC0A9, "TLS_PSK_WITH_AES_256_CCM_8"},
	{0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8"},
	{0xC0AB, "TLS_PSK_DHE_WITH_AES_256_CCM_8"},
	{0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
	{0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
	{0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"},
	{0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"},
	{0xC0B0, "TLS_ECCPWD_WITH_AES_128_GCM_SHA256"},
	{0xC0B1, "TLS_ECCPWD_WITH_AES_256_GCM_SHA384"},
	{0xC0B2, "TLS_ECCPWD_WITH_AES_128_CCM_SHA256"},
	{0xC0B3, "TLS_ECCPWD_WITH_AES_256_CCM_SHA384"},
	{0xC0B4, "TLS_SHA256_SHA256"},
	{0xC0B5, "TLS_SHA384_SHA384"},
	{0xC0FF, "TLS_ECJPAKE_WITH_AES_128_CCM_8"},
	{0xC100, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC"},
	{0xC101, "TLS_GOSTR341112_256_WITH_MAGMA_CTR_OMAC"},
	{0xC102, "TLS_GOSTR341112_256_WITH_28147_CNT_IMIT"},
	{0xC103, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L"},
	{0xC104, "TLS_GOSTR341112_256_WITH_MAGMA_MGM_L"},
	{0xC105, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_S"},
	{0xC106, "TLS_GOSTR341112_256_WITH_MAGMA_MGM_S"},
	{0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
	{0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
	{0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
	{0xCCAB, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256"},
	{0xCCAC, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"},
	{0xCCAD, "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256"},
	{0xCCAE, "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256"},
	{0xD001, "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256"},
	{0xD002, "TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384"},
	{0xD003, "TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256"},
	{0xD005, "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256"},
}

var (
	cipherSuiteNames   = make(map[uint16]string, len(cipherSuites))
	cipherSuitesByName = make(map[string]uint16, len(cipherSuites))
)

func init() {
	for _, s := range cipherSuites {
		cipherSuiteNames[s.id] = s.name
		cipherSuitesByName[strings.ToUpper(s.name)] = s.id
	}
}

// CipherSuiteName returns the IANA name of a cipher suite
// ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), "GREASE" for a GREASE value
// and "0xXXXX" for an unassigned one.
func CipherSuiteName(id uint16) string {
	if n, ok := cipherSuiteNames[id]; ok {
		return n
	}
	if IsGREASE(id) {
		return "GREASE"
	}
	return hex16(id)
}

// CipherSuiteByName looks a cipher suite up by its IANA name, ignoring case;
// the "TLS_" prefix may be left out ("ECDHE_RSA_WITH_AES_128_GCM_SHA256").
// A hex code ("0xC02F") is accepted too. OpenSSL's own names
// ("ECDHE-RSA-AES128-GCM-SHA256") are not.
func CipherSuiteByName(name string) (uint16, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if id, ok := cipherSuitesByName[n]; ok {
		return id, true
	}
	if id, ok := cipherSuitesByName["TLS_"+n]; ok {
		return id, true
	}
	if strings.HasPrefix(n, "0X") && len(n) > 2 {
		if v, err := strconv.ParseUint(n[2:], 16, 16); err == nil {
			return uint16(v), true
		}
	}
	return 0, false
}

// Key exchange families returned by SuiteKeyExchange.
const (
	KeyExchangeECDHE    = "ECDHE"
	KeyExchangeDHE      = "DHE"
	KeyExchangeRSA      = "RSA"
	KeyExchangePSK      = "PSK"
	KeyExchangeDHEPSK   = "DHE_PSK"
	KeyExchangeECDHEPSK = "ECDHE_PSK"
	KeyExchangeRSAPSK   = "RSA_PSK"
	KeyExchangeDHAnon   = "DH_anon"
	KeyExchangeECDHAnon = "ECDH_anon"
	KeyExchangeTLS13    = "TLS13"
)

// SuiteKeyExchange names the key exchange of a cipher suite, which decides
// whether a ServerKeyExchange follows the Certificate and what it holds:
// "ECDHE", "DHE", "RSA", "PSK", "DHE_PSK", "ECDHE_PSK", "RSA_PSK",
// "DH_anon", "ECDH_anon", "DH" and "ECDH" (static keys: no
// ServerKeyExchange), "SRP", "KRB5", "ECCPWD", "ECJPAKE", "GOST", "NULL",
// and "TLS13" for the TLS 1.3 suites (RFC 8446 §B.4), which leave the key
// exchange to the key_share extension. It returns "" for an unknown suite
// and for the signalling values (SCSVs).
func SuiteKeyExchange(suite uint16) string {
	n, ok := cipherSuiteNames[suite]
	if !ok {
		return ""
	}
	switch suite {
	case 0x00C6, 0x00C7, 0xC0B4, 0xC0B5:
		// TLS 1.3 suites outside 0x13xx: SM4 (RFC 8998) and the
		// integrity-only suites (RFC 9150).
		return KeyExchangeTLS13
	}
	if suite>>8 == 0x13 {
		return KeyExchangeTLS13
	}
	n = strings.TrimPrefix(n, "TLS_")
	if strings.HasPrefix(n, "GOSTR") {
		return "GOST"
	}
	kx, _, found := strings.Cut(n, "_WITH_")
	if !found {
		return "" // TLS_EMPTY_RENEGOTIATION_INFO_SCSV, TLS_FALLBACK_SCSV
	}
	switch {
	case kx == "NULL":
		return "NULL"
	case strings.HasPrefix(kx, "ECDHE_PSK"):
		return KeyExchangeECDHEPSK
	case strings.HasPrefix(kx, "DHE_PSK"), kx == "PSK_DHE": // 0xC0AA/0xC0AB spell it PSK_DHE
		return KeyExchangeDHEPSK
	case strings.HasPrefix(kx, "RSA_PSK"):
		return KeyExchangeRSAPSK
	case kx == "PSK":
		return KeyExchangePSK
	case strings.HasPrefix(kx, "ECDHE_"):
		return KeyExchangeECDHE
	case strings.HasPrefix(kx, "DHE_"):
		return KeyExchangeDHE
	case strings.HasPrefix(kx, "ECDH_anon"):
		return KeyExchangeECDHAnon
	case strings.HasPrefix(kx, "DH_anon"):
		return KeyExchangeDHAnon
	case strings.HasPrefix(kx, "ECDH_"):
		return "ECDH"
	case strings.HasPrefix(kx, "DH_"):
		return "DH"
	case strings.HasPrefix(kx, "RSA"):
		return KeyExchangeRSA
	case strings.HasPrefix(kx, "SRP"):
		return "SRP"
	case strings.HasPrefix(kx, "KRB5"):
		return "KRB5"
	case kx == "ECCPWD":
		return "ECCPWD"
	case kx == "ECJPAKE":
		return "ECJPAKE"
	}
	return ""
}

// ---- extensions ----

// Extension types this package parses or refers to (IANA "TLS
// ExtensionType Values").
const (
	ExtServerName              uint16 = 0
	ExtStatusRequest           uint16 = 5
	ExtSupportedGroups         uint16 = 10
	ExtECPointFormats          uint16 = 11
	ExtSignatureAlgorithms     uint16 = 13
	ExtALPN                    uint16 = 16
	ExtSCT                     uint16 = 18
	ExtPadding                 uint16 = 21
	ExtEncryptThenMAC          uint16 = 22
	ExtExtendedMasterSecret    uint16 = 23
	ExtSessionTicket           uint16 = 35
	ExtPreSharedKey            uint16 = 41
	ExtEarlyData               uint16 = 42
	ExtSupportedVersions       uint16 = 43
	ExtCookie                  uint16 = 44
	ExtPSKModes                uint16 = 45
	ExtSignatureAlgorithmsCert uint16 = 50
	ExtKeyShare                uint16 = 51
	ExtRenegotiationInfo       uint16 = 0xFF01
)

var extensionNames = map[uint16]string{
	0:      "server_name",
	1:      "max_fragment_length",
	2:      "client_certificate_url",
	3:      "trusted_ca_keys",
	4:      "truncated_hmac",
	5:      "status_request",
	6:      "user_mapping",
	7:      "client_authz",
	8:      "server_authz",
	9:      "cert_type",
	10:     "supported_groups",
	11:     "ec_point_formats",
	12:     "srp",
	13:     "signature_algorithms",
	14:     "use_srtp",
	15:     "heartbeat",
	16:     "application_layer_protocol_negotiation",
	17:     "status_request_v2",
	18:     "signed_certificate_timestamp",
	19:     "client_certificate_type",
	20:     "server_certificate_type",
	21:     "padding",
	22:     "encrypt_then_mac",
	23:     "extended_master_secret",
	24:     "token_binding",
	25:     "cached_info",
	26:     "tls_lts",
	27:     "compress_certificate",
	28:     "record_size_limit",
	29:     "pwd_protect",
	30:     "pwd_clear",
	31:     "password_salt",
	32:     "ticket_pinning",
	33:     "tls_cert_with_extern_psk",
	34:     "delegated_credential",
	35:     "session_ticket",
	36:     "TLMSP",
	37:     "TLMSP_proxying",
	38:     "TLMSP_delegate",
	39:     "supported_ekt_ciphers",
	41:     "pre_shared_key",
	42:     "early_data",
	43:     "supported_versions",
	44:     "cookie",
	45:     "psk_key_exchange_modes",
	47:     "certificate_authorities",
	48:     "oid_filters",
	49:     "post_handshake_auth",
	50:     "signature_algorithms_cert",
	51:     "key_share",
	52:     "transparency_info",
	53:     "connection_id_deprecated",
	54:     "connection_id",
	55:     "external_id_hash",
	56:     "external_session_id",
	57:     "quic_transport_parameters",
	58:     "ticket_request",
	59:     "dnssec_chain",
	60:     "sequence_number_encryption_algorithms",
	61:     "rrc",
	62:     "tls_flags",
	0x3374: "next_protocol_negotiation", // not IANA: NPN draft, still seen in old clients
	0x4469: "application_settings_old",  // not IANA: Chrome ALPS, first code point
	0x44CD: "application_settings",      // not IANA: Chrome ALPS
	0x7550: "channel_id",                // not IANA
	0xFE0D: "encrypted_client_hello",
	0xFF01: "renegotiation_info",
}

// ExtensionName returns the IANA name of a TLS extension type
// ("supported_versions"), "GREASE", or "0xXXXX".
func ExtensionName(t uint16) string {
	if n, ok := extensionNames[t]; ok {
		return n
	}
	if IsGREASE(t) {
		return "GREASE"
	}
	return hex16(t)
}

// ---- named groups ----

// Named groups this package refers to (IANA "TLS Supported Groups").
const (
	GroupSecp256r1      uint16 = 23
	GroupSecp384r1      uint16 = 24
	GroupSecp521r1      uint16 = 25
	GroupX25519         uint16 = 29
	GroupX448           uint16 = 30
	GroupFFDHE2048      uint16 = 0x0100
	GroupX25519MLKEM768 uint16 = 0x11EC
)

var groupNames = map[uint16]string{
	1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2",
	6: "sect233k1", 7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1",
	11: "sect409k1", 12: "sect409r1", 13: "sect571k1", 14: "sect571r1",
	15: "secp160k1", 16: "secp160r1", 17: "secp160r2", 18: "secp192k1", 19: "secp192r1",
	20: "secp224k1", 21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1",
	25: "secp521r1",
	26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1",
	29: "x25519", 30: "x448",
	31: "brainpoolP256r1tls13", 32: "brainpoolP384r1tls13", 33: "brainpoolP512r1tls13",
	34: "GC256A", 35: "GC256B", 36: "GC256C", 37: "GC256D",
	38: "GC512A", 39: "GC512B", 40: "GC512C",
	41:     "curveSM2",
	0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096", 0x0103: "ffdhe6144", 0x0104: "ffdhe8192",
	0x0200: "MLKEM512", 0x0201: "MLKEM768", 0x0202: "MLKEM1024",
	0x11EB: "SecP256r1MLKEM768", 0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024",
	0x6399: "X25519Kyber768Draft00", 0x639A: "SecP256r1Kyber768Draft00",
	0xFF01: "arbitrary_explicit_prime_curves", 0xFF02: "arbitrary_explicit_char2_curves",
}

// GroupName returns the IANA name of a named group ("x25519",
// "secp256r1", "X25519MLKEM768", "ffdhe2048"), "GREASE", or "0xXXXX".
func GroupName(g uint16) string {
	if n, ok := groupNames[g]; ok {
		return n
	}
	if IsGREASE(g) {
		return "GREASE"
	}
	return hex16(g)
}

// ---- signature schemes ----

var signatureSchemeNames = map[uint16]string{
	// TLS 1.2 SignatureAndHashAlgorithm pairs (RFC 5246 §7.4.1.4.1) that
	// TLS 1.3 left unnamed: hash byte first (1 md5, 2 sha1, 3 sha224,
	// 4 sha256, 5 sha384, 6 sha512), then signature (1 rsa, 2 dsa, 3 ecdsa).
	0x0101: "rsa_pkcs1_md5", 0x0102: "dsa_md5", 0x0103: "ecdsa_md5",
	0x0202: "dsa_sha1",
	0x0301: "rsa_pkcs1_sha224", 0x0302: "dsa_sha224", 0x0303: "ecdsa_sha224",
	0x0402: "dsa_sha256", 0x0502: "dsa_sha384", 0x0602: "dsa_sha512",
	// IANA "TLS SignatureScheme" registry.
	0x0201: "rsa_pkcs1_sha1",
	0x0203: "ecdsa_sha1",
	0x0401: "rsa_pkcs1_sha256",
	0x0403: "ecdsa_secp256r1_sha256",
	0x0420: "rsa_pkcs1_sha256_legacy",
	0x0501: "rsa_pkcs1_sha384",
	0x0503: "ecdsa_secp384r1_sha384",
	0x0520: "rsa_pkcs1_sha384_legacy",
	0x0601: "rsa_pkcs1_sha512",
	0x0603: "ecdsa_secp521r1_sha512",
	0x0620: "rsa_pkcs1_sha512_legacy",
	0x0704: "eccsi_sha256",
	0x0705: "iso_ibs1",
	0x0706: "iso_ibs2",
	0x0707: "iso_chinese_ibs",
	0x0708: "sm2sig_sm3",
	0x0709: "gostr34102012_256a",
	0x070A: "gostr34102012_256b",
	0x070B: "gostr34102012_256c",
	0x070C: "gostr34102012_256d",
	0x070D: "gostr34102012_512a",
	0x070E: "gostr34102012_512b",
	0x070F: "gostr34102012_512c",
	0x0804: "rsa_pss_rsae_sha256",
	0x0805: "rsa_pss_rsae_sha384",
	0x0806: "rsa_pss_rsae_sha512",
	0x0807: "ed25519",
	0x0808: "ed448",
	0x0809: "rsa_pss_pss_sha256",
	0x080A: "rsa_pss_pss_sha384",
	0x080B: "rsa_pss_pss_sha512",
	0x081A: "ecdsa_brainpoolP256r1tls13_sha256",
	0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
	0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
	0x0904: "mldsa44",
	0x0905: "mldsa65",
	0x0906: "mldsa87",
}

// SignatureSchemeName returns the IANA name of a signature scheme
// ("rsa_pkcs1_sha256" for 0x0401), a name for the TLS 1.2 pairs TLS 1.3
// left unnamed ("rsa_pkcs1_md5" 0x0101, "rsa_pkcs1_sha224" 0x0301),
// "GREASE", or "0xXXXX".
func SignatureSchemeName(s uint16) string {
	if n, ok := signatureSchemeNames[s]; ok {
		return n
	}
	if IsGREASE(s) {
		return "GREASE"
	}
	return hex16(s)
}

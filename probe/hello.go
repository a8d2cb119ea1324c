package probe

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// helloSpec is what one crafted ClientHello offers. The probe builds the
// bytes itself (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2) so that it can offer
// exactly one version, any suite list (including the ones no Go stack
// implements, such as DHE) and any signature algorithm list.
type helloSpec struct {
	// Versions offered. One version at or below TLS 1.2 goes in
	// legacy_version alone; a list containing TLS 1.3 goes in
	// supported_versions (RFC 8446 §4.2.1), legacy_version 0x0303.
	Versions []uint16
	Suites   []uint16
	// SigAlgs is signature_algorithms (RFC 5246 §7.4.1.4.1, RFC 8446
	// §4.2.3); nil means defaultSigAlgs. Not sent below TLS 1.2.
	SigAlgs []uint16
	// SigAlgsCert is signature_algorithms_cert (RFC 8446 §4.2.3), sent
	// when not nil: the schemes a client accepts in certificates only.
	SigAlgsCert []uint16
	// Groups is supported_groups (RFC 8422 §5.1.1, RFC 7919); nil means
	// defaultGroups.
	Groups []uint16
	// ALPN is sent when not empty: "tds/8.0" in TDS 8.0 strict (MS-TDS §3.3.5.1).
	ALPN string
	// ServerName is the SNI host name; "" or an IP address sends none
	// (RFC 6066 §3 forbids literal addresses).
	ServerName string
}

// defaultSigAlgs lists every RSA, ECDSA, PSS and EdDSA scheme, weak
// hashes included: the probe wants an answer from a server whose
// certificate is signed with MD5 or SHA-224 too (RFC 5246 §7.4.2).
var defaultSigAlgs = []uint16{
	0x0804, 0x0805, 0x0806, // rsa_pss_rsae_sha256/384/512
	0x0809, 0x080a, 0x080b, // rsa_pss_pss_sha256/384/512
	0x0401, 0x0501, 0x0601, // rsa_pkcs1_sha256/384/512
	0x0403, 0x0503, 0x0603, // ecdsa_secp256r1_sha256 ...
	0x0807, 0x0808, // ed25519, ed448
	0x0301, 0x0303, // rsa/ecdsa sha224
	0x0201, 0x0203, 0x0202, // rsa/ecdsa/dsa sha1
	0x0101, // rsa md5
}

// defaultGroups offers the common elliptic curves and the RFC 7919 finite
// field groups (a server that knows RFC 7919 picks its DHE group from them).
var defaultGroups = []uint16{
	0x001d,                 // x25519
	0x0017, 0x0018, 0x0019, // secp256r1, secp384r1, secp521r1
	0x0100, 0x0101, 0x0102, // ffdhe2048, ffdhe3072, ffdhe4096
}

// rsaHashSchemes maps a certificate signature hash (as
// tlsbridge.CertSummary.SignatureHash names it) to the TLS 1.2
// SignatureAndHashAlgorithm for RSA PKCS #1 v1.5 (RFC 5246 §7.4.1.4.1).
var rsaHashSchemes = []struct {
	hash   string
	scheme uint16
}{
	{"md5", 0x0101}, {"sha1", 0x0201}, {"sha224", 0x0301},
	{"sha256", 0x0401}, {"sha384", 0x0501}, {"sha512", 0x0601},
}

// knownSuites returns every assigned cipher suite tlsbridge can name,
// split into the TLS 1.0-1.2 suites and the TLS 1.3 ones, in code point
// order. SCSVs (no key exchange) are left out.
var knownSuites = sync.OnceValues(func() (legacy, tls13 []uint16) {
	for id := 1; id <= 0xFFFF; id++ {
		s := uint16(id)
		kx := tlsbridge.SuiteKeyExchange(s)
		switch {
		case kx == "":
		case kx == tlsbridge.KeyExchangeTLS13:
			tls13 = append(tls13, s)
		default:
			legacy = append(legacy, s)
		}
	}
	return legacy, tls13
})

// suitesFor returns the suites worth offering for version v.
func suitesFor(v uint16) []uint16 {
	legacy, tls13 := knownSuites()
	if v == tlsbridge.VersionTLS13 {
		return slices.Clone(tls13)
	}
	return slices.Clone(legacy)
}

// marshalHello returns the ClientHello as one TLS handshake record (or
// several, if it exceeds a record's 2^14 bytes, RFC 5246 §6.2.1).
func marshalHello(h helloSpec) ([]byte, error) {
	if len(h.Versions) == 0 || len(h.Suites) == 0 {
		return nil, fmt.Errorf("probe: a ClientHello needs a version and a suite")
	}
	maxV := slices.Max(h.Versions)
	legacyVersion := maxV
	tls13 := maxV >= tlsbridge.VersionTLS13
	if tls13 {
		legacyVersion = tlsbridge.VersionTLS12
	}
	sigAlgs := h.SigAlgs
	if sigAlgs == nil {
		sigAlgs = defaultSigAlgs
	}
	groups := h.Groups
	if groups == nil {
		groups = defaultGroups
	}
	random := make([]byte, 32)
	sessionID := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return nil, err
	}
	if _, err := rand.Read(sessionID); err != nil {
		return nil, err
	}
	var share []byte // the X25519 key_share of a TLS 1.3 hello
	if tls13 {
		key, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		share = key.PublicKey().Bytes()
	}
	var b cryptobyte.Builder
	b.AddUint8(uint8(tlsbridge.HandshakeClientHello))
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(legacyVersion)
		b.AddBytes(random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range h.Suites {
				b.AddUint16(s)
			}
			// RFC 5746 §3.3: the SCSV stands in for renegotiation_info.
			b.AddUint16(0x00FF)
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) }) // null compression
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			addHelloExtensions(b, h, sigAlgs, groups, share)
		})
	})
	msg, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("probe: building ClientHello: %w", err)
	}
	// Record layer version: 0x0301 for the first flight, as most stacks do
	// (RFC 8446 §5.1 allows it; some old servers reject anything else).
	return records(msg, min(legacyVersion, tlsbridge.VersionTLS10)), nil
}

// addHelloExtensions adds the ClientHello's extensions (RFC 8446 §4.2,
// RFC 5246 §7.4.1.4) for h; share is the X25519 key_share of a TLS 1.3
// hello.
func addHelloExtensions(b *cryptobyte.Builder, h helloSpec, sigAlgs, groups []uint16, share []byte) {
	maxV, minV := slices.Max(h.Versions), slices.Min(h.Versions)
	tls13 := maxV >= tlsbridge.VersionTLS13
	if h.ServerName != "" && net.ParseIP(h.ServerName) == nil {
		addExt(b, tlsbridge.ExtServerName, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint8(0) // host_name
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(h.ServerName)) })
			})
		})
	}
	addExt(b, tlsbridge.ExtSupportedGroups, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, g := range groups {
				b.AddUint16(g)
			}
		})
	})
	addExt(b, tlsbridge.ExtECPointFormats, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) }) // uncompressed
	})
	if maxV >= tlsbridge.VersionTLS12 {
		addExt(b, tlsbridge.ExtSignatureAlgorithms, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, s := range sigAlgs {
					b.AddUint16(s)
				}
			})
		})
	}
	if maxV >= tlsbridge.VersionTLS12 && h.SigAlgsCert != nil {
		addExt(b, tlsbridge.ExtSignatureAlgorithmsCert, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, s := range h.SigAlgsCert {
					b.AddUint16(s)
				}
			})
		})
	}
	if h.ALPN != "" {
		addExt(b, tlsbridge.ExtALPN, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(h.ALPN)) })
			})
		})
	}
	if minV < tlsbridge.VersionTLS13 {
		addExt(b, tlsbridge.ExtExtendedMasterSecret, func(*cryptobyte.Builder) {})
	}
	// supported_versions even below TLS 1.3: a TLS 1.3 server then
	// negotiates from this list (RFC 8446 §4.2.1), so a hello means
	// "only these versions"; an older server picks at most
	// legacy_version and the caller checks what it chose.
	addExt(b, tlsbridge.ExtSupportedVersions, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
			vs := slices.Clone(h.Versions)
			slices.Sort(vs)
			slices.Reverse(vs)
			for _, v := range vs {
				b.AddUint16(v)
			}
		})
	})
	if tls13 {
		addExt(b, tlsbridge.ExtPSKModes, func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(1) }) // psk_dhe_ke
		})
		// RFC 8446 §4.2.8: one X25519 share; a server without X25519
		// answers with a HelloRetryRequest, which is an answer too.
		addExt(b, tlsbridge.ExtKeyShare, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16(0x001d)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(share) })
			})
		})
	}
}

// records splits a handshake message into TLS records of at most 2^14
// bytes (RFC 5246 §6.2.1) with the given record-layer version.
func records(msg []byte, recVersion uint16) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(len(msg), 1<<14)
		out = append(out, 0x16, byte(recVersion>>8), byte(recVersion), byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func addExt(b *cryptobyte.Builder, t uint16, body func(*cryptobyte.Builder)) {
	b.AddUint16(t)
	b.AddUint16LengthPrefixed(body)
}

// versionNames names versions as the JSON does ("TLS 1.2").
func versionNames(vs []uint16) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = tlsbridge.VersionName(v)
	}
	return out
}

// suiteNames names suites by their IANA names.
func suiteNames(ss []uint16) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = tlsbridge.CipherSuiteName(s)
	}
	return out
}

func joinVersions(vs []uint16) string {
	if len(vs) == 0 {
		return "none"
	}
	return strings.Join(versionNames(vs), ", ")
}

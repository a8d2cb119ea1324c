package tlsbridge

import (
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
)

// ServerKeyExchange kinds.
const (
	KindDHE     = "DHE"
	KindECDHE   = "ECDHE"
	KindUnknown = "unknown"
)

// ecCurveTypeNamed is ECCurveType named_curve (RFC 8422 §5.4); the other
// values (explicit curves) were deprecated and are not parsed.
const ecCurveTypeNamed = 3

// ServerKeyExchange is a parsed TLS 1.0-1.2 ServerKeyExchange (RFC 5246
// §7.4.3, RFC 8422 §5.4, RFC 4279 §2-4). Byte slices alias Raw.
type ServerKeyExchange struct {
	Raw []byte // the whole handshake message, 4-byte header included
	// Kind is KindDHE for the finite-field suites (DHE_*, DH_anon,
	// DHE_PSK), KindECDHE for ECDHE_*, ECDH_anon and ECDHE_PSK, and
	// KindUnknown for anything else (RSA_EXPORT, PSK, SRP...), whose body is
	// left unparsed.
	Kind string
	// KeyExchange is SuiteKeyExchange of the cipher suite.
	KeyExchange string

	// PSKIdentityHint is set for DHE_PSK and ECDHE_PSK (RFC 4279 §3, RFC 5489 §2).
	PSKIdentityHint []byte

	// DHE: ServerDHParams { dh_p, dh_g, dh_Ys }, big-endian as sent.
	Prime     []byte
	Generator *big.Int
	Public    []byte // dh_Ys for DHE, the EC point for ECDHE
	PrimeBits int    // bit length of p
	PublicLen int    // bytes of dh_Ys or of the EC point
	// PublicShorterThanPrime: dh_Ys has fewer bytes than p needs, i.e. the
	// server stripped leading zero bytes of its public value (RFC 5246
	// §8.1.2 strips them from the shared secret; stacks disagree on Ys).
	PublicShorterThanPrime bool
	// PublicLeadingZero: dh_Ys starts with a zero byte, i.e. the server
	// pads its public value to the length of p.
	PublicLeadingZero bool

	// ECDHE: ECParameters with curve_type named_curve.
	CurveID uint16

	// SignatureScheme is the TLS 1.2 SignatureAndHashAlgorithm of the
	// signature (0 before TLS 1.2 and for anonymous or PSK suites).
	SignatureScheme uint16
	Signature       []byte
}

// ParseServerKeyExchange parses raw, a complete ServerKeyExchange handshake
// message including its 4-byte header. Its layout depends on the cipher
// suite the ServerHello selected and on the version (only TLS 1.2 puts a
// SignatureAndHashAlgorithm before the signature, RFC 5246 §7.4.3); pass
// version 0 if it is unknown and both layouts are tried.
func ParseServerKeyExchange(raw []byte, cipherSuite uint16, version uint16) (*ServerKeyExchange, error) {
	s, err := handshakeBody(raw, HandshakeServerKeyExchange)
	if err != nil {
		return nil, err
	}
	const msg = "ServerKeyExchange"
	if version >= VersionTLS13 {
		return nil, fmt.Errorf("tlsbridge: %s under %s, which has none: %w", msg, VersionName(version), ErrUnexpectedMessage)
	}
	kx := SuiteKeyExchange(cipherSuite)
	m := &ServerKeyExchange{Raw: raw, Kind: KindUnknown, KeyExchange: kx}
	fail := func(what string) (*ServerKeyExchange, error) {
		return nil, fmt.Errorf("tlsbridge: %s (%s): %s: %w", msg, CipherSuiteName(cipherSuite), what, ErrMalformed)
	}
	if kx == KeyExchangeDHEPSK || kx == KeyExchangeECDHEPSK {
		var hint cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&hint) {
			return fail("psk_identity_hint")
		}
		m.PSKIdentityHint = hint
	}
	signed := false
	switch kx {
	case KeyExchangeDHE, KeyExchangeDHAnon, KeyExchangeDHEPSK:
		m.Kind = KindDHE
		signed = kx == KeyExchangeDHE
		var p, g, ys cryptobyte.String
		switch {
		case !s.ReadUint16LengthPrefixed(&p) || p.Empty():
			return fail("dh_p")
		case !s.ReadUint16LengthPrefixed(&g) || g.Empty():
			return fail("dh_g")
		case !s.ReadUint16LengthPrefixed(&ys) || ys.Empty():
			return fail("dh_Ys")
		}
		m.Prime, m.Public = p, ys
		m.Generator = new(big.Int).SetBytes(g)
		m.PrimeBits = new(big.Int).SetBytes(p).BitLen()
		m.PublicLen = len(ys)
		m.PublicShorterThanPrime = len(ys) < (m.PrimeBits+7)/8
		m.PublicLeadingZero = ys[0] == 0
	case KeyExchangeECDHE, KeyExchangeECDHAnon, KeyExchangeECDHEPSK:
		m.Kind = KindECDHE
		signed = kx == KeyExchangeECDHE
		var curveType uint8
		var point cryptobyte.String
		switch {
		case !s.ReadUint8(&curveType):
			return fail("curve_type")
		case curveType != ecCurveTypeNamed:
			return fail(fmt.Sprintf("curve_type %d (only named_curve is supported)", curveType))
		case !s.ReadUint16(&m.CurveID):
			return fail("named_curve")
		case !s.ReadUint8LengthPrefixed(&point) || point.Empty():
			return fail("public point")
		}
		m.Public, m.PublicLen = point, len(point)
	default:
		return m, nil
	}
	if !signed {
		if !s.Empty() {
			return fail(fmt.Sprintf("%d trailing bytes", len(s)))
		}
		return m, nil
	}
	// digitally-signed struct: TLS 1.2 prefixes the algorithm (RFC 5246 §4.7).
	try := func(s cryptobyte.String, withScheme bool) bool {
		var scheme uint16
		var sig cryptobyte.String
		if withScheme && !s.ReadUint16(&scheme) {
			return false
		}
		if !s.ReadUint16LengthPrefixed(&sig) || !s.Empty() {
			return false
		}
		m.SignatureScheme, m.Signature = scheme, sig
		return true
	}
	switch {
	case version == VersionTLS12 && try(s, true),
		version != 0 && version < VersionTLS12 && try(s, false),
		version == 0 && (try(s, true) || try(s, false)):
		return m, nil
	}
	return fail("signature")
}

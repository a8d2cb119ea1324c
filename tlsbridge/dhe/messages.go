package dhe

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// Handshake message types (RFC 5246 §7.4).
const (
	typeHelloRequest       uint8 = 0
	typeClientHello        uint8 = 1
	typeServerHello        uint8 = 2
	typeCertificate        uint8 = 11
	typeServerKeyExchange  uint8 = 12
	typeCertificateRequest uint8 = 13
	typeServerHelloDone    uint8 = 14
	typeClientKeyExchange  uint8 = 16
	typeFinished           uint8 = 20
)

// Extension types (IANA "TLS ExtensionType Values").
const (
	extServerName           uint16 = 0      // RFC 6066 §3
	extSupportedGroups      uint16 = 10     // RFC 7919 §2
	extSignatureAlgorithms  uint16 = 13     // RFC 5246 §7.4.1.4.1
	extALPN                 uint16 = 16     // RFC 7301 §3.1
	extExtendedMasterSecret uint16 = 23     // RFC 7627 §5.1
	extRenegotiationInfo    uint16 = 0xff01 // RFC 5746 §3.2
)

// SignatureAndHashAlgorithm values for RSA PKCS #1 v1.5 (RFC 5246
// §7.4.1.4.1), the only signatures this engine makes and checks.
const (
	sigRSASHA1   uint16 = 0x0201
	sigRSASHA256 uint16 = 0x0401
	sigRSASHA384 uint16 = 0x0501
	sigRSASHA512 uint16 = 0x0601
)

// ffdhe named groups (RFC 7919 §2), offered by the client so that a server
// that knows RFC 7919 picks one of them.
const (
	namedFFDHE2048 uint16 = 0x0100
	namedFFDHE3072 uint16 = 0x0101
	namedFFDHE4096 uint16 = 0x0102
)

// errDecode marks a message that does not parse (decode_error).
var errDecode = errors.New("dhe: malformed handshake message")

// marshalHandshake frames a handshake body: type, 24-bit length, body.
func marshalHandshake(typ uint8, body func(b *cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	b.AddUint8(typ)
	b.AddUint24LengthPrefixed(body)
	return b.BytesOrPanic() // only our own well-formed values get here
}

// clientHelloMsg is a ClientHello (RFC 5246 §7.4.1.2) with the extensions
// this engine reads.
type clientHelloMsg struct {
	vers               uint16
	random             []byte
	sessionID          []byte
	cipherSuites       []uint16
	compression        []byte
	serverName         string
	sigAlgs            []uint16
	ems                bool
	secureReneg        bool // renegotiation_info present or the SCSV offered
	renegInfo          []byte
	alpn               []string
	supportedGroups    []uint16
	hasSupportedGroups bool
}

func (m *clientHelloMsg) marshal() []byte {
	return marshalHandshake(typeClientHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range m.cipherSuites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.compression) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if m.serverName != "" {
				b.AddUint16(extServerName)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8(0) // host_name
						b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.serverName)) })
					})
				})
			}
			if len(m.supportedGroups) > 0 {
				b.AddUint16(extSupportedGroups)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, g := range m.supportedGroups {
							b.AddUint16(g)
						}
					})
				})
			}
			if len(m.sigAlgs) > 0 {
				b.AddUint16(extSignatureAlgorithms)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, s := range m.sigAlgs {
							b.AddUint16(s)
						}
					})
				})
			}
			if len(m.alpn) > 0 {
				b.AddUint16(extALPN)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, p := range m.alpn {
							b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
						}
					})
				})
			}
			if m.ems {
				b.AddUint16(extExtendedMasterSecret)
				b.AddUint16(0)
			}
			if m.secureReneg {
				b.AddUint16(extRenegotiationInfo)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.renegInfo) })
				})
			}
		})
	})
}

// unmarshal parses a ClientHello body (after the 4-byte header).
func (m *clientHelloMsg) unmarshal(body []byte) bool {
	s := cryptobyte.String(body)
	var sid, suites, comp cryptobyte.String
	m.random = make([]byte, 32)
	if !s.ReadUint16(&m.vers) || !s.CopyBytes(m.random) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&comp) || len(comp) == 0 {
		return false
	}
	m.sessionID, m.compression = []byte(sid), []byte(comp)
	for !suites.Empty() {
		var id uint16
		suites.ReadUint16(&id)
		if id == scsvRenegotiation {
			m.secureReneg = true
		}
		m.cipherSuites = append(m.cipherSuites, id)
	}
	if s.Empty() {
		return true // no extensions (RFC 5246 §7.4.1.2)
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	seen := map[uint16]bool{}
	for !exts.Empty() {
		var typ uint16
		var d cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&d) {
			return false
		}
		if seen[typ] {
			return false // RFC 5246 §7.4.1.4: at most one of each type
		}
		seen[typ] = true
		switch typ {
		case extServerName:
			var list cryptobyte.String
			if !d.ReadUint16LengthPrefixed(&list) || !d.Empty() {
				return false
			}
			for !list.Empty() {
				var nt uint8
				var name cryptobyte.String
				if !list.ReadUint8(&nt) || !list.ReadUint16LengthPrefixed(&name) {
					return false
				}
				if nt == 0 {
					m.serverName = string(name)
				}
			}
		case extSupportedGroups:
			var list cryptobyte.String
			if !d.ReadUint16LengthPrefixed(&list) || len(list)%2 != 0 || !d.Empty() {
				return false
			}
			m.hasSupportedGroups = true
			for !list.Empty() {
				var g uint16
				list.ReadUint16(&g)
				m.supportedGroups = append(m.supportedGroups, g)
			}
		case extSignatureAlgorithms:
			var list cryptobyte.String
			if !d.ReadUint16LengthPrefixed(&list) || len(list)%2 != 0 || !d.Empty() {
				return false
			}
			for !list.Empty() {
				var a uint16
				list.ReadUint16(&a)
				m.sigAlgs = append(m.sigAlgs, a)
			}
		case extALPN:
			var list cryptobyte.String
			if !d.ReadUint16LengthPrefixed(&list) || !d.Empty() {
				return false
			}
			for !list.Empty() {
				var p cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&p) || len(p) == 0 {
					return false
				}
				m.alpn = append(m.alpn, string(p))
			}
		case extExtendedMasterSecret:
			if !d.Empty() {
				return false
			}
			m.ems = true
		case extRenegotiationInfo:
			var ri cryptobyte.String
			if !d.ReadUint8LengthPrefixed(&ri) || !d.Empty() {
				return false
			}
			m.secureReneg, m.renegInfo = true, []byte(ri)
		}
	}
	return true
}

// serverHelloMsg is a ServerHello (RFC 5246 §7.4.1.3).
type serverHelloMsg struct {
	vers        uint16
	random      []byte
	sessionID   []byte
	cipherSuite uint16
	compression uint8
	ems         bool
	secureReneg bool
	renegInfo   []byte
	alpn        string
}

func (m *serverHelloMsg) marshal() []byte {
	return marshalHandshake(typeServerHello, func(b *cryptobyte.Builder) {
		b.AddUint16(m.vers)
		b.AddBytes(m.random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sessionID) })
		b.AddUint16(m.cipherSuite)
		b.AddUint8(m.compression)
		if !m.ems && !m.secureReneg && m.alpn == "" {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if m.secureReneg {
				b.AddUint16(extRenegotiationInfo)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.renegInfo) })
				})
			}
			if m.ems {
				b.AddUint16(extExtendedMasterSecret)
				b.AddUint16(0)
			}
			if m.alpn != "" {
				b.AddUint16(extALPN)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.alpn)) })
					})
				})
			}
		})
	})
}

func (m *serverHelloMsg) unmarshal(body []byte) bool {
	s := cryptobyte.String(body)
	var sid cryptobyte.String
	m.random = make([]byte, 32)
	if !s.ReadUint16(&m.vers) || !s.CopyBytes(m.random) ||
		!s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32 ||
		!s.ReadUint16(&m.cipherSuite) || !s.ReadUint8(&m.compression) {
		return false
	}
	m.sessionID = []byte(sid)
	if s.Empty() {
		return true
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return false
	}
	seen := map[uint16]bool{}
	for !exts.Empty() {
		var typ uint16
		var d cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&d) || seen[typ] {
			return false
		}
		seen[typ] = true
		switch typ {
		case extExtendedMasterSecret:
			if !d.Empty() {
				return false
			}
			m.ems = true
		case extRenegotiationInfo:
			var ri cryptobyte.String
			if !d.ReadUint8LengthPrefixed(&ri) || !d.Empty() {
				return false
			}
			m.secureReneg, m.renegInfo = true, []byte(ri)
		case extALPN:
			var list, p cryptobyte.String
			if !d.ReadUint16LengthPrefixed(&list) || !d.Empty() ||
				!list.ReadUint8LengthPrefixed(&p) || len(p) == 0 || !list.Empty() {
				return false
			}
			m.alpn = string(p)
		}
	}
	return true
}

// certificateMsg is a Certificate message (RFC 5246 §7.4.2).
type certificateMsg struct {
	certificates [][]byte
}

func (m *certificateMsg) marshal() []byte {
	return marshalHandshake(typeCertificate, func(b *cryptobyte.Builder) {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, c := range m.certificates {
				b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c) })
			}
		})
	})
}

func (m *certificateMsg) unmarshal(body []byte) bool {
	s := cryptobyte.String(body)
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return false
	}
	for !list.Empty() {
		var c cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&c) || len(c) == 0 {
			return false
		}
		m.certificates = append(m.certificates, []byte(c))
	}
	return true
}

// serverKeyExchangeMsg is a DHE ServerKeyExchange (RFC 5246 §7.4.3):
// ServerDHParams and a signature over client_random + server_random +
// params; TLS 1.2 puts a SignatureAndHashAlgorithm before the signature.
type serverKeyExchangeMsg struct {
	p, g, ys []byte
	params   []byte // the encoded ServerDHParams, what the signature covers
	sigAlg   uint16 // TLS 1.2 only
	sig      []byte
}

func (m *serverKeyExchangeMsg) marshal(version uint16) []byte {
	return marshalHandshake(typeServerKeyExchange, func(b *cryptobyte.Builder) {
		b.AddBytes(m.params)
		if version >= VersionTLS12 {
			b.AddUint16(m.sigAlg)
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.sig) })
	})
}

// encodeDHParams encodes ServerDHParams.
func encodeDHParams(p, g, ys []byte) []byte {
	var b cryptobyte.Builder
	for _, v := range [][]byte{p, g, ys} {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
	}
	return b.BytesOrPanic()
}

func (m *serverKeyExchangeMsg) unmarshal(body []byte, version uint16) bool {
	s := cryptobyte.String(body)
	var p, g, ys cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&p) || len(p) == 0 ||
		!s.ReadUint16LengthPrefixed(&g) || len(g) == 0 ||
		!s.ReadUint16LengthPrefixed(&ys) || len(ys) == 0 {
		return false
	}
	m.p, m.g, m.ys = []byte(p), []byte(g), []byte(ys)
	m.params = body[:len(body)-len(s)]
	if version >= VersionTLS12 && !s.ReadUint16(&m.sigAlg) {
		return false
	}
	var sig cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&sig) || len(sig) == 0 || !s.Empty() {
		return false
	}
	m.sig = []byte(sig)
	return true
}

// clientKeyExchangeMsg carries the client's DH public value dh_Yc
// (RFC 5246 §7.4.7.2, explicit encoding).
type clientKeyExchangeMsg struct {
	yc []byte
}

func (m *clientKeyExchangeMsg) marshal() []byte {
	return marshalHandshake(typeClientKeyExchange, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.yc) })
	})
}

func (m *clientKeyExchangeMsg) unmarshal(body []byte) bool {
	s := cryptobyte.String(body)
	var yc cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&yc) || len(yc) == 0 || !s.Empty() {
		return false
	}
	m.yc = []byte(yc)
	return true
}

// finishedMsg is Finished (RFC 5246 §7.4.9).
type finishedMsg struct {
	verifyData []byte
}

func (m *finishedMsg) marshal() []byte {
	return marshalHandshake(typeFinished, func(b *cryptobyte.Builder) { b.AddBytes(m.verifyData) })
}

func (m *finishedMsg) unmarshal(body []byte) bool {
	if len(body) != finishedLen {
		return false
	}
	m.verifyData = append([]byte(nil), body...)
	return true
}

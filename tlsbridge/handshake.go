package tlsbridge

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Sentinel errors of handshake parsing. Errors returned by this package wrap
// them; test with errors.Is.
var (
	// ErrMalformed: the bytes do not follow the structure the RFC defines.
	ErrMalformed = errors.New("tlsbridge: malformed")
	// ErrUnexpectedMessage: a Parse function was given a handshake message
	// of another type.
	ErrUnexpectedMessage = errors.New("tlsbridge: unexpected handshake message type")
)

// handshakeHeaderLen is msg_type (1) + length (uint24) (RFC 8446 §4).
const handshakeHeaderLen = 4

// HandshakeType is the msg_type of a handshake message (RFC 8446 §4,
// RFC 5246 §7.4).
type HandshakeType uint8

// Handshake message types.
const (
	HandshakeHelloRequest        HandshakeType = 0 // TLS 1.2 only
	HandshakeClientHello         HandshakeType = 1
	HandshakeServerHello         HandshakeType = 2
	HandshakeHelloVerifyRequest  HandshakeType = 3 // DTLS
	HandshakeNewSessionTicket    HandshakeType = 4
	HandshakeEndOfEarlyData      HandshakeType = 5
	HandshakeEncryptedExtensions HandshakeType = 8
	HandshakeCertificate         HandshakeType = 11
	HandshakeServerKeyExchange   HandshakeType = 12
	HandshakeCertificateRequest  HandshakeType = 13
	HandshakeServerHelloDone     HandshakeType = 14
	HandshakeCertificateVerify   HandshakeType = 15
	HandshakeClientKeyExchange   HandshakeType = 16
	HandshakeFinished            HandshakeType = 20
	HandshakeCertificateURL      HandshakeType = 21
	HandshakeCertificateStatus   HandshakeType = 22
	HandshakeKeyUpdate           HandshakeType = 24
	HandshakeCompressedCert      HandshakeType = 25 // RFC 8879
	HandshakeMessageHash         HandshakeType = 254
)

var handshakeTypeNames = map[HandshakeType]string{
	HandshakeHelloRequest:        "HelloRequest",
	HandshakeClientHello:         "ClientHello",
	HandshakeServerHello:         "ServerHello",
	HandshakeHelloVerifyRequest:  "HelloVerifyRequest",
	HandshakeNewSessionTicket:    "NewSessionTicket",
	HandshakeEndOfEarlyData:      "EndOfEarlyData",
	HandshakeEncryptedExtensions: "EncryptedExtensions",
	HandshakeCertificate:         "Certificate",
	HandshakeServerKeyExchange:   "ServerKeyExchange",
	HandshakeCertificateRequest:  "CertificateRequest",
	HandshakeServerHelloDone:     "ServerHelloDone",
	HandshakeCertificateVerify:   "CertificateVerify",
	HandshakeClientKeyExchange:   "ClientKeyExchange",
	HandshakeFinished:            "Finished",
	HandshakeCertificateURL:      "CertificateURL",
	HandshakeCertificateStatus:   "CertificateStatus",
	HandshakeKeyUpdate:           "KeyUpdate",
	HandshakeCompressedCert:      "CompressedCertificate",
	HandshakeMessageHash:         "MessageHash",
}

// String returns the RFC name ("ClientHello"), or "HandshakeType(N)".
func (t HandshakeType) String() string {
	if n, ok := handshakeTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("HandshakeType(%d)", uint8(t))
}

// HandshakeMessage is one complete handshake message as a Stream
// reassembled it.
type HandshakeMessage struct {
	Type HandshakeType
	Body []byte // the message after its 4-byte header; aliases Raw
	Raw  []byte // the whole message, header included
}

// String returns the type and body size, never the contents.
func (m *HandshakeMessage) String() string {
	return fmt.Sprintf("%s (%d bytes)", m.Type, len(m.Body))
}

// ParseHandshakeMessage checks the 4-byte header of raw, a single
// handshake message, and returns it as a HandshakeMessage aliasing raw.
func ParseHandshakeMessage(raw []byte) (*HandshakeMessage, error) {
	if len(raw) < handshakeHeaderLen {
		return nil, fmt.Errorf("tlsbridge: handshake message of %d bytes, shorter than its header: %w", len(raw), ErrMalformed)
	}
	t := HandshakeType(raw[0])
	n := int(raw[1])<<16 | int(raw[2])<<8 | int(raw[3])
	if n != len(raw)-handshakeHeaderLen {
		return nil, fmt.Errorf("tlsbridge: %s header says %d bytes, have %d: %w", t, n, len(raw)-handshakeHeaderLen, ErrMalformed)
	}
	return &HandshakeMessage{Type: t, Body: raw[handshakeHeaderLen:], Raw: raw}, nil
}

// handshakeBody checks that raw is one complete handshake message of type
// want and returns its body.
func handshakeBody(raw []byte, want HandshakeType) (cryptobyte.String, error) {
	m, err := ParseHandshakeMessage(raw)
	if err != nil {
		return nil, err
	}
	if m.Type != want {
		return nil, fmt.Errorf("tlsbridge: want %s, got %s: %w", want, m.Type, ErrUnexpectedMessage)
	}
	return cryptobyte.String(m.Body), nil
}

// Extension is one extension of a hello message, in wire order. Data
// aliases the message's Raw bytes.
type Extension struct {
	Type uint16
	Data []byte
}

// String returns the extension name and data size.
func (e Extension) String() string {
	return fmt.Sprintf("%s(%d bytes)", ExtensionName(e.Type), len(e.Data))
}

// readExtensions reads the extensions block that ends a hello message
// (RFC 8446 §4.2): absent entirely when no bytes are left (allowed before
// TLS 1.3, RFC 5246 §7.4.1.2), else a uint16-prefixed list that must end
// the message. Duplicate types other than GREASE are an error
// (RFC 8446 §4.2: "There MUST NOT be more than one extension of the same
// type"), which every mainstream server enforces.
func readExtensions(s *cryptobyte.String, msg string) ([]Extension, error) {
	if s.Empty() {
		return nil, nil
	}
	var list cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&list) {
		return nil, fmt.Errorf("tlsbridge: %s: extensions block: %w", msg, ErrMalformed)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("tlsbridge: %s: %d bytes after the extensions: %w", msg, len(*s), ErrMalformed)
	}
	// Count first so that even thousands of extensions cost one allocation.
	n := 0
	for c := list; !c.Empty(); n++ {
		var t uint16
		var d cryptobyte.String
		if !c.ReadUint16(&t) || !c.ReadUint16LengthPrefixed(&d) {
			return nil, fmt.Errorf("tlsbridge: %s: extension #%d (after %d good ones) is truncated: %w", msg, n+1, n, ErrMalformed)
		}
	}
	exts := make([]Extension, 0, n)
	var seen map[uint16]struct{}
	if n > 16 {
		seen = make(map[uint16]struct{}, n)
	}
	for !list.Empty() {
		var t uint16
		var d cryptobyte.String
		list.ReadUint16(&t)
		list.ReadUint16LengthPrefixed(&d)
		if !IsGREASE(t) {
			dup := false
			if seen != nil {
				_, dup = seen[t]
				seen[t] = struct{}{}
			} else {
				for _, e := range exts {
					if e.Type == t {
						dup = true
						break
					}
				}
			}
			if dup {
				return nil, fmt.Errorf("tlsbridge: %s: extension %s (0x%04x) appears twice: %w", msg, ExtensionName(t), t, ErrMalformed)
			}
		}
		exts = append(exts, Extension{Type: t, Data: d})
	}
	return exts, nil
}

// extError names the extension whose body failed to parse.
func extError(msg string, t uint16, what string) error {
	return fmt.Errorf("tlsbridge: %s: extension %s (0x%04x): %s: %w", msg, ExtensionName(t), t, what, ErrMalformed)
}

// readUint16List reads a uint16-length-prefixed, non-empty list of uint16
// values (supported_groups, signature_algorithms: RFC 8446 §4.2.7, §4.2.3).
func readUint16List(s *cryptobyte.String) ([]uint16, bool) {
	var l cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&l) || l.Empty() || len(l)%2 != 0 {
		return nil, false
	}
	out := make([]uint16, 0, len(l)/2)
	for !l.Empty() {
		var v uint16
		l.ReadUint16(&v)
		out = append(out, v)
	}
	return out, true
}

package tlsbridge

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// helloRetryRequestRandom is the Random of a HelloRetryRequest,
// SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
var helloRetryRequestRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11,
	0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E,
	0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// Downgrade sentinels a TLS 1.3 server puts in the last 8 bytes of its
// Random when it negotiates TLS 1.2 or below (RFC 8446 §4.1.3).
var (
	downgradeTLS12 = []byte("DOWNGRD\x01")
	downgradeTLS11 = []byte("DOWNGRD\x00")
)

// ServerHello is a parsed ServerHello or HelloRetryRequest (RFC 8446
// §4.1.3, RFC 5246 §7.4.1.3). Byte slices alias Raw.
type ServerHello struct {
	Raw           []byte // the whole handshake message, 4-byte header included
	LegacyVersion uint16
	Random        []byte // 32 bytes
	SessionID     []byte
	CipherSuite   uint16
	Compression   uint8
	Extensions    []Extension // wire order

	// SupportedVersion is the version chosen in supported_versions, 0 if
	// the extension is absent (a TLS 1.2 or older server).
	SupportedVersion uint16
	// SelectedGroup is the key_share group: the server's share in a
	// ServerHello, the group it asks for in a HelloRetryRequest; 0 if absent.
	SelectedGroup uint16
	// ALPN is the protocol the server selected, "" if none.
	ALPN string
}

// ParseServerHello parses raw, a complete ServerHello handshake message
// including its 4-byte header. A HelloRetryRequest parses too (it is a
// ServerHello on the wire): check IsHelloRetryRequest.
func ParseServerHello(raw []byte) (*ServerHello, error) {
	s, err := handshakeBody(raw, HandshakeServerHello)
	if err != nil {
		return nil, err
	}
	const msg = "ServerHello"
	h := &ServerHello{Raw: raw}
	var random, sid cryptobyte.String
	switch {
	case !s.ReadUint16(&h.LegacyVersion):
		return nil, fmt.Errorf("tlsbridge: %s: legacy_version: %w", msg, ErrMalformed)
	case !s.ReadBytes((*[]byte)(&random), 32):
		return nil, fmt.Errorf("tlsbridge: %s: random: %w", msg, ErrMalformed)
	case !s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32:
		return nil, fmt.Errorf("tlsbridge: %s: legacy_session_id_echo: %w", msg, ErrMalformed)
	case !s.ReadUint16(&h.CipherSuite):
		return nil, fmt.Errorf("tlsbridge: %s: cipher_suite: %w", msg, ErrMalformed)
	case !s.ReadUint8(&h.Compression):
		return nil, fmt.Errorf("tlsbridge: %s: legacy_compression_method: %w", msg, ErrMalformed)
	}
	h.Random, h.SessionID = random, sid
	if h.Extensions, err = readExtensions(&s, msg); err != nil {
		return nil, err
	}
	hrr := h.IsHelloRetryRequest()
	for _, e := range h.Extensions {
		d := cryptobyte.String(e.Data)
		var ok bool
		switch e.Type {
		case ExtSupportedVersions:
			// RFC 8446 §4.2.1: a ServerHello carries one selected_version.
			ok = d.ReadUint16(&h.SupportedVersion)
		case ExtKeyShare:
			if hrr {
				// KeyShareHelloRetryRequest: selected_group only (§4.2.8).
				ok = d.ReadUint16(&h.SelectedGroup)
			} else {
				// KeyShareServerHello: one KeyShareEntry (§4.2.8).
				var key cryptobyte.String
				ok = d.ReadUint16(&h.SelectedGroup) && d.ReadUint16LengthPrefixed(&key) && !key.Empty()
			}
		case ExtALPN:
			// RFC 7301 §3.1: the list holds exactly one protocol.
			var list, p cryptobyte.String
			ok = d.ReadUint16LengthPrefixed(&list) && list.ReadUint8LengthPrefixed(&p) && !p.Empty() && list.Empty()
			h.ALPN = string(p)
		default:
			continue
		}
		if !ok {
			return nil, extError(msg, e.Type, "bad body")
		}
		if !d.Empty() {
			return nil, extError(msg, e.Type, fmt.Sprintf("%d trailing bytes", len(d)))
		}
	}
	return h, nil
}

// Version returns the negotiated protocol version: SupportedVersion if the
// server sent supported_versions, else LegacyVersion (RFC 8446 §4.1.3).
func (h *ServerHello) Version() uint16 {
	if h.SupportedVersion != 0 {
		return h.SupportedVersion
	}
	return h.LegacyVersion
}

// IsHelloRetryRequest reports whether the message is a HelloRetryRequest:
// a ServerHello whose Random is the special value of RFC 8446 §4.1.3.
func (h *ServerHello) IsHelloRetryRequest() bool {
	return bytes.Equal(h.Random, helloRetryRequestRandom)
}

// IsTLS13 reports whether the server selected TLS 1.3: after this message
// (unless it is a HelloRetryRequest) everything but ChangeCipherSpec is
// encrypted; see Stream.SetEncrypted and Stream.SetTLS13.
func (h *ServerHello) IsTLS13() bool { return h.Version() == VersionTLS13 }

// DowngradeSentinel returns the version a TLS 1.3-capable server signalled
// it downgraded to, through the last 8 bytes of its Random (RFC 8446
// §4.1.3): VersionTLS12, VersionTLS11 (meaning 1.1 or below), or 0.
func (h *ServerHello) DowngradeSentinel() uint16 {
	if len(h.Random) != 32 {
		return 0
	}
	switch tail := h.Random[24:]; {
	case bytes.Equal(tail, downgradeTLS12):
		return VersionTLS12
	case bytes.Equal(tail, downgradeTLS11):
		return VersionTLS11
	}
	return 0
}

// Extension returns the first extension of type t and whether there is one.
func (h *ServerHello) Extension(t uint16) (Extension, bool) {
	for _, e := range h.Extensions {
		if e.Type == t {
			return e, true
		}
	}
	return Extension{}, false
}

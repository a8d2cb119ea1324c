package tlsbridge

import (
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// ClientHello is a parsed ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
// Byte slices alias Raw. The named fields are filled from the extensions
// of the same name; a field is nil/empty when its extension is absent.
// GREASE values are kept everywhere except in OfferedVersions and the
// fingerprints.
type ClientHello struct {
	Raw                []byte // the whole handshake message, 4-byte header included
	LegacyVersion      uint16
	Random             []byte // 32 bytes
	SessionID          []byte // 0..32 bytes
	CipherSuites       []uint16
	CompressionMethods []uint8
	Extensions         []Extension // wire order, GREASE and unknown types included

	ServerName              string   // server_name (host_name entry)
	ALPN                    []string // application_layer_protocol_negotiation
	SupportedVersions       []uint16 // supported_versions
	SignatureAlgorithms     []uint16 // signature_algorithms
	SignatureAlgorithmsCert []uint16 // signature_algorithms_cert
	SupportedGroups         []uint16 // supported_groups
	KeyShareGroups          []uint16 // groups of the key_share entries
	ECPointFormats          []uint8  // ec_point_formats
}

// ParseClientHello parses raw, a complete ClientHello handshake message
// including its 4-byte header. A malformed extension yields an error that
// names it; extensions this package does not interpret are kept raw.
func ParseClientHello(raw []byte) (*ClientHello, error) {
	s, err := handshakeBody(raw, HandshakeClientHello)
	if err != nil {
		return nil, err
	}
	const msg = "ClientHello"
	c := &ClientHello{Raw: raw}
	var random, sid, suites, comp cryptobyte.String
	switch {
	case !s.ReadUint16(&c.LegacyVersion):
		return nil, fmt.Errorf("tlsbridge: %s: legacy_version: %w", msg, ErrMalformed)
	case !s.ReadBytes((*[]byte)(&random), 32):
		return nil, fmt.Errorf("tlsbridge: %s: random: %w", msg, ErrMalformed)
	case !s.ReadUint8LengthPrefixed(&sid) || len(sid) > 32:
		return nil, fmt.Errorf("tlsbridge: %s: legacy_session_id: %w", msg, ErrMalformed)
	case !s.ReadUint16LengthPrefixed(&suites) || len(suites) < 2 || len(suites)%2 != 0:
		return nil, fmt.Errorf("tlsbridge: %s: cipher_suites: %w", msg, ErrMalformed)
	case !s.ReadUint8LengthPrefixed(&comp) || len(comp) < 1:
		return nil, fmt.Errorf("tlsbridge: %s: legacy_compression_methods: %w", msg, ErrMalformed)
	}
	c.Random, c.SessionID, c.CompressionMethods = random, sid, comp
	c.CipherSuites = make([]uint16, 0, len(suites)/2)
	for !suites.Empty() {
		var v uint16
		suites.ReadUint16(&v)
		c.CipherSuites = append(c.CipherSuites, v)
	}
	if c.Extensions, err = readExtensions(&s, msg); err != nil {
		return nil, err
	}
	for _, e := range c.Extensions {
		if err := c.parseExtension(e); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *ClientHello) parseExtension(e Extension) error {
	const msg = "ClientHello"
	d := cryptobyte.String(e.Data)
	var ok bool
	switch e.Type {
	case ExtServerName:
		ok = c.parseServerName(&d)
	case ExtSupportedGroups:
		c.SupportedGroups, ok = readUint16List(&d)
	case ExtSignatureAlgorithms:
		c.SignatureAlgorithms, ok = readUint16List(&d)
	case ExtSignatureAlgorithmsCert:
		c.SignatureAlgorithmsCert, ok = readUint16List(&d)
	case ExtECPointFormats:
		// RFC 8422 §5.1.2: ECPointFormat ec_point_format_list<1..2^8-1>.
		var l cryptobyte.String
		ok = d.ReadUint8LengthPrefixed(&l) && !l.Empty()
		c.ECPointFormats = l
	case ExtALPN:
		ok = c.parseALPN(&d)
	case ExtSupportedVersions:
		// RFC 8446 §4.2.1: ProtocolVersion versions<2..254>.
		var l cryptobyte.String
		ok = d.ReadUint8LengthPrefixed(&l) && !l.Empty() && len(l)%2 == 0
		for ok && !l.Empty() {
			var v uint16
			l.ReadUint16(&v)
			c.SupportedVersions = append(c.SupportedVersions, v)
		}
	case ExtKeyShare:
		ok = c.parseKeyShare(&d)
	default:
		return nil // kept raw in Extensions
	}
	if !ok {
		return extError(msg, e.Type, "bad body")
	}
	if !d.Empty() {
		return extError(msg, e.Type, fmt.Sprintf("%d trailing bytes", len(d)))
	}
	return nil
}

// parseServerName reads ServerNameList (RFC 6066 §3) and keeps the first
// host_name entry. Other name types are skipped.
func (c *ClientHello) parseServerName(d *cryptobyte.String) bool {
	var list cryptobyte.String
	if !d.ReadUint16LengthPrefixed(&list) || list.Empty() {
		return false
	}
	for !list.Empty() {
		var typ uint8
		var name cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&name) {
			return false
		}
		if typ == 0 && c.ServerName == "" {
			c.ServerName = string(name)
		}
	}
	return true
}

// parseALPN reads ProtocolNameList (RFC 7301 §3.1): a non-empty list of
// non-empty names.
func (c *ClientHello) parseALPN(d *cryptobyte.String) bool {
	var list cryptobyte.String
	if !d.ReadUint16LengthPrefixed(&list) || list.Empty() {
		return false
	}
	for !list.Empty() {
		var p cryptobyte.String
		if !list.ReadUint8LengthPrefixed(&p) || p.Empty() {
			return false
		}
		c.ALPN = append(c.ALPN, string(p))
	}
	return true
}

// parseKeyShare reads KeyShareClientHello (RFC 8446 §4.2.8). The list may
// be empty: a client that wants the server to pick a group sends none.
func (c *ClientHello) parseKeyShare(d *cryptobyte.String) bool {
	var list cryptobyte.String
	if !d.ReadUint16LengthPrefixed(&list) {
		return false
	}
	c.KeyShareGroups = []uint16{}
	for !list.Empty() {
		var g uint16
		var key cryptobyte.String
		if !list.ReadUint16(&g) || !list.ReadUint16LengthPrefixed(&key) || key.Empty() {
			return false
		}
		c.KeyShareGroups = append(c.KeyShareGroups, g)
	}
	return true
}

// Extension returns the first extension of type t and whether there is one.
func (c *ClientHello) Extension(t uint16) (Extension, bool) {
	for _, e := range c.Extensions {
		if e.Type == t {
			return e, true
		}
	}
	return Extension{}, false
}

// HasExtension reports whether the hello carries an extension of type t.
func (c *ClientHello) HasExtension(t uint16) bool {
	_, ok := c.Extension(t)
	return ok
}

// OfferedVersions returns the protocol versions the client offers, highest
// first. With a supported_versions extension (RFC 8446 §4.2.1) it is that
// list in client order without GREASE; otherwise it is every version from
// LegacyVersion down to TLS 1.0, the lowest a client without the extension
// is assumed to accept (only SSL 3.0 itself for a 0x0300 hello). Without
// the extension a server must not pick TLS 1.3 (RFC 8446 §4.2.1), so a
// LegacyVersion above 0x0303 counts as TLS 1.2.
func (c *ClientHello) OfferedVersions() []uint16 {
	if c.SupportedVersions != nil {
		out := make([]uint16, 0, len(c.SupportedVersions))
		for _, v := range c.SupportedVersions {
			if !IsGREASE(v) {
				out = append(out, v)
			}
		}
		return out
	}
	switch top := min(c.LegacyVersion, VersionTLS12); {
	case top < VersionSSL30:
		return nil
	case top == VersionSSL30:
		return []uint16{VersionSSL30}
	default:
		out := make([]uint16, 0, top-VersionTLS10+1)
		for v := top; v >= VersionTLS10; v-- {
			out = append(out, v)
		}
		return out
	}
}

// HighestVersion returns the highest version the client offers, 0 if none.
func (c *ClientHello) HighestVersion() uint16 {
	vs := c.OfferedVersions()
	if len(vs) == 0 {
		return 0
	}
	return slices.Max(vs)
}

// Offers reports whether the client offers the given protocol version.
func (c *ClientHello) Offers(version uint16) bool {
	return slices.Contains(c.OfferedVersions(), version)
}

// OffersCipherSuite reports whether the client lists the cipher suite.
func (c *ClientHello) OffersCipherSuite(suite uint16) bool {
	return slices.Contains(c.CipherSuites, suite)
}

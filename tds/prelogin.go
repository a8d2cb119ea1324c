package tds

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
)

// PreloginToken names one entry of the PRELOGIN option table (MS-TDS §2.2.6.5).
type PreloginToken uint8

// PRELOGIN option tokens, MS-TDS §2.2.6.5.
const (
	PreloginVersion         PreloginToken = 0x00
	PreloginEncryption      PreloginToken = 0x01
	PreloginInstance        PreloginToken = 0x02 // INSTOPT
	PreloginThreadID        PreloginToken = 0x03
	PreloginMARS            PreloginToken = 0x04
	PreloginTraceID         PreloginToken = 0x05
	PreloginFedAuthRequired PreloginToken = 0x06
	PreloginNonce           PreloginToken = 0x07 // NONCEOPT
	PreloginTerminator      PreloginToken = 0xFF
)

var preloginTokenNames = map[PreloginToken]string{
	PreloginVersion:         "VERSION",
	PreloginEncryption:      "ENCRYPTION",
	PreloginInstance:        "INSTOPT",
	PreloginThreadID:        "THREADID",
	PreloginMARS:            "MARS",
	PreloginTraceID:         "TRACEID",
	PreloginFedAuthRequired: "FEDAUTHREQUIRED",
	PreloginNonce:           "NONCEOPT",
	PreloginTerminator:      "TERMINATOR",
}

// String returns the spec name of the token, or 0xNN for unknown tokens.
func (t PreloginToken) String() string {
	if n, ok := preloginTokenNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02X", uint8(t))
}

// Encryption is the one-byte value of the PRELOGIN ENCRYPTION option
// (MS-TDS §2.2.6.5, B_FENCRYPTION).
type Encryption uint8

// ENCRYPTION values, MS-TDS §2.2.6.5.
const (
	EncryptOff    Encryption = 0x00 // encryption available but off (login only)
	EncryptOn     Encryption = 0x01 // encryption available and on
	EncryptNotSup Encryption = 0x02 // encryption not available
	EncryptReq    Encryption = 0x03 // encryption required
	// EncryptStrict is what go-mssqldb v1.11.2 sends in TDS 8.0 strict mode
	// (its own constant encryptStrict = 4); it is not in the spec's value
	// table, so treat it as unverified.
	EncryptStrict Encryption = 0x04
	// EncryptClientCert is a bit OR'd into the other values when the client
	// authenticates with a certificate.
	EncryptClientCert Encryption = 0x80
)

// Base returns e without the CLIENT_CERT bit.
func (e Encryption) Base() Encryption { return e &^ EncryptClientCert }

// ClientCert reports whether the CLIENT_CERT bit is set.
func (e Encryption) ClientCert() bool { return e&EncryptClientCert != 0 }

// String returns "OFF", "ON", "NOT_SUP", "REQ" or "STRICT", with
// "+CLIENT_CERT" appended when that bit is set; unknown values print as 0xNN.
func (e Encryption) String() string {
	var s string
	switch e.Base() {
	case EncryptOff:
		s = "OFF"
	case EncryptOn:
		s = "ON"
	case EncryptNotSup:
		s = "NOT_SUP"
	case EncryptReq:
		s = "REQ"
	case EncryptStrict:
		s = "STRICT"
	default:
		return fmt.Sprintf("0x%02X", uint8(e))
	}
	if e.ClientCert() {
		s += "+CLIENT_CERT"
	}
	return s
}

// PreloginOption is one option of a PRELOGIN message: its token and data.
type PreloginOption struct {
	Token PreloginToken
	Data  []byte
}

// Prelogin is a PRELOGIN message (MS-TDS §2.2.6.5), sent by the client in a
// packet of type 0x12 and answered by the server in a packet of type 0x04.
// Options are kept in wire order, duplicates and unknown tokens included,
// because a map would lose both and a proxy must see what was really sent.
type Prelogin struct {
	Options []PreloginOption

	// offsets holds each option's PL_OFFSET as parsed (nil for a Prelogin
	// built in code); Oddities uses it to find overlapping data.
	offsets []uint16
}

// Errors returned by ParsePrelogin; test with errors.Is.
var (
	ErrPreloginTruncated  = errors.New("tds: PRELOGIN option table truncated")
	ErrPreloginNoTerm     = errors.New("tds: PRELOGIN option table has no terminator")
	ErrPreloginDataBounds = errors.New("tds: PRELOGIN option data out of bounds")
	ErrPreloginTooLarge   = errors.New("tds: PRELOGIN too large for 16-bit offsets")
)

// ParsePrelogin decodes a PRELOGIN payload (the message without packet
// headers). Each option's Data aliases payload, so the original bytes stay
// available. It never panics: offsets and lengths past the end of the
// payload and a missing terminator are errors.
func ParsePrelogin(payload []byte) (*Prelogin, error) {
	s := cryptobyte.String(payload)
	p := &Prelogin{}
	for i := 0; ; i++ {
		var tok uint8
		if !s.ReadUint8(&tok) {
			return nil, fmt.Errorf("%w after %d options", ErrPreloginNoTerm, i)
		}
		if PreloginToken(tok) == PreloginTerminator {
			return p, nil
		}
		// Offsets are big-endian and count from the start of the payload
		// (MS-TDS §2.2.6.5, PL_OFFSET / PL_OPTION_LENGTH).
		var off, n uint16
		if !s.ReadUint16(&off) || !s.ReadUint16(&n) {
			return nil, fmt.Errorf("%w: option %d (%s)", ErrPreloginTruncated, i, PreloginToken(tok))
		}
		start, end := int(off), int(off)+int(n)
		if end > len(payload) {
			return nil, fmt.Errorf("%w: option %d (%s) at %d+%d, payload is %d bytes",
				ErrPreloginDataBounds, i, PreloginToken(tok), start, n, len(payload))
		}
		p.Options = append(p.Options, PreloginOption{
			Token: PreloginToken(tok),
			Data:  payload[start:end:end],
		})
		p.offsets = append(p.offsets, off)
	}
}

// Marshal encodes p as a PRELOGIN payload: the option table, the terminator,
// then each option's data in option order. For a payload whose data was laid
// out in table order right after the table (as every client and SQL Server
// do) Marshal(ParsePrelogin(x)) == x. Options with the terminator token are
// skipped. Marshal returns nil if the data cannot be addressed with 16-bit
// offsets (more than 64 KiB); use Append to get the error.
func (p *Prelogin) Marshal() []byte {
	b, err := p.Append(nil)
	if err != nil {
		return nil
	}
	return b
}

// Append appends the encoded PRELOGIN payload to b (see Marshal).
func (p *Prelogin) Append(b []byte) ([]byte, error) {
	n := 0
	for _, o := range p.Options {
		if o.Token != PreloginTerminator {
			n++
		}
	}
	off := 5*n + 1
	total := off
	for _, o := range p.Options {
		if o.Token == PreloginTerminator {
			continue
		}
		if len(o.Data) > 0xFFFF || total > 0xFFFF {
			return b, fmt.Errorf("%w: option %s at %d+%d", ErrPreloginTooLarge, o.Token, total, len(o.Data))
		}
		total += len(o.Data)
	}
	b = append(make([]byte, 0, len(b)+total), b...)
	for _, o := range p.Options {
		if o.Token == PreloginTerminator {
			continue
		}
		b = append(b, byte(o.Token), byte(off>>8), byte(off), byte(len(o.Data)>>8), byte(len(o.Data)))
		off += len(o.Data)
	}
	b = append(b, byte(PreloginTerminator))
	for _, o := range p.Options {
		if o.Token != PreloginTerminator {
			b = append(b, o.Data...)
		}
	}
	return b, nil
}

// Get returns the data of the first option with token t.
func (p *Prelogin) Get(t PreloginToken) ([]byte, bool) {
	for _, o := range p.Options {
		if o.Token == t {
			return o.Data, true
		}
	}
	return nil, false
}

// Set replaces the data of the first option with token t, or appends a new
// option at the end (the terminator is implicit). Setting the terminator
// token is a no-op: it is not an option.
func (p *Prelogin) Set(t PreloginToken, data []byte) {
	if t == PreloginTerminator {
		return
	}
	for i := range p.Options {
		if p.Options[i].Token == t {
			p.Options[i].Data = data
			return
		}
	}
	p.Options = append(p.Options, PreloginOption{Token: t, Data: data})
}

// ProductVersion is the data of the VERSION option: the sender's version.
// Fields are read as SQL Server writes them (major, minor, build big-endian,
// sub-build big-endian: 15.0.2000.0 is 0F 00 07 D0 00 00). Clients differ:
// go-mssqldb v1.11.2 writes its own version little-endian (02 00 0B 01 00 00),
// which reads here as 2.0.2817.0.
type ProductVersion struct {
	Major, Minor uint8
	Build        uint16
	SubBuild     uint16
}

// String formats v as major.minor.build.subbuild, e.g. "15.0.2000.0".
func (v ProductVersion) String() string {
	return strconv.Itoa(int(v.Major)) + "." + strconv.Itoa(int(v.Minor)) + "." +
		strconv.Itoa(int(v.Build)) + "." + strconv.Itoa(int(v.SubBuild))
}

// Bytes returns the 6-byte VERSION option data for v.
func (v ProductVersion) Bytes() []byte {
	return []byte{v.Major, v.Minor, byte(v.Build >> 8), byte(v.Build), byte(v.SubBuild >> 8), byte(v.SubBuild)}
}

// Version decodes the VERSION option; false if absent or shorter than 6 bytes.
func (p *Prelogin) Version() (ProductVersion, bool) {
	d, ok := p.Get(PreloginVersion)
	if !ok || len(d) < 6 {
		return ProductVersion{}, false
	}
	return ProductVersion{
		Major:    d[0],
		Minor:    d[1],
		Build:    binary.BigEndian.Uint16(d[2:4]),
		SubBuild: binary.BigEndian.Uint16(d[4:6]),
	}, true
}

// Encryption decodes the ENCRYPTION option; false if absent or empty.
func (p *Prelogin) Encryption() (Encryption, bool) {
	d, ok := p.Get(PreloginEncryption)
	if !ok || len(d) < 1 {
		return 0, false
	}
	return Encryption(d[0]), true
}

// Instance decodes the INSTOPT option: the instance name up to the first
// NUL (or the whole data if there is none). False if the option is absent.
func (p *Prelogin) Instance() (string, bool) {
	d, ok := p.Get(PreloginInstance)
	if !ok {
		return "", false
	}
	for i, c := range d {
		if c == 0 {
			return string(d[:i]), true
		}
	}
	return string(d), true
}

// ThreadID decodes the THREADID option as a little-endian ULONG: the
// MS-TDS §4.1 sample sends B8 0D 00 00 for thread 3512, although the option
// table itself is big-endian. go-mssqldb sends 0; servers send an empty
// option. False if absent or shorter than 4 bytes.
func (p *Prelogin) ThreadID() (uint32, bool) {
	d, ok := p.Get(PreloginThreadID)
	if !ok || len(d) < 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(d), true
}

// MARS decodes the MARS option (non-zero means on). False if absent or empty.
func (p *Prelogin) MARS() (bool, bool) {
	d, ok := p.Get(PreloginMARS)
	if !ok || len(d) < 1 {
		return false, false
	}
	return d[0] != 0, true
}

// FedAuthRequired decodes the FEDAUTHREQUIRED option. False if absent or empty.
func (p *Prelogin) FedAuthRequired() (bool, bool) {
	d, ok := p.Get(PreloginFedAuthRequired)
	if !ok || len(d) < 1 {
		return false, false
	}
	return d[0] != 0, true
}

// Nonce returns the NONCEOPT data (32 bytes when well formed).
func (p *Prelogin) Nonce() ([]byte, bool) { return p.Get(PreloginNonce) }

// GUID is a 16-byte GUID as SQL Server puts it on the wire: the first three
// groups little-endian (the .NET / Windows layout), the last eight bytes as is.
type GUID [16]byte

// String formats g the way SQL Server and .NET print it (and the way
// SQL Server's logs show a ClientConnectionId), in upper case:
// XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX.
func (g GUID) String() string {
	b, _ := g.MarshalText()
	return string(b)
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (g GUID) MarshalText() ([]byte, error) {
	// Reorder the little-endian groups into display order.
	c := [16]byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
		g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]}
	const hexdig = "0123456789ABCDEF"
	out := make([]byte, 0, 36)
	for i, x := range c {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexdig[x>>4], hexdig[x&0x0F])
	}
	return out, nil
}

// ParseGUID parses the String form (either case) back into wire layout.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("tds: bad GUID %q", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	var c [16]byte
	if _, err := hex.Decode(c[:], []byte(h)); err != nil {
		return g, fmt.Errorf("tds: bad GUID %q: %w", s, err)
	}
	return GUID{c[3], c[2], c[1], c[0], c[5], c[4], c[7], c[6],
		c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]}, nil
}

// TraceID is the data of the TRACEID option (TDS 7.4, MS-TDS §2.2.6.5):
// the client connection id (the ClientConnectionId SQL Server logs), the
// activity id and the activity sequence.
type TraceID struct {
	ConnectionID GUID
	ActivityID   GUID
	Sequence     uint32 // little-endian on the wire
}

// Bytes returns the 36-byte TRACEID option data.
func (t TraceID) Bytes() []byte {
	b := make([]byte, 36)
	copy(b, t.ConnectionID[:])
	copy(b[16:], t.ActivityID[:])
	binary.LittleEndian.PutUint32(b[32:], t.Sequence)
	return b
}

// TraceID decodes the TRACEID option; false if absent or shorter than 36 bytes.
func (p *Prelogin) TraceID() (TraceID, bool) {
	d, ok := p.Get(PreloginTraceID)
	if !ok || len(d) < 36 {
		return TraceID{}, false
	}
	var t TraceID
	copy(t.ConnectionID[:], d[0:16])
	copy(t.ActivityID[:], d[16:32])
	t.Sequence = binary.LittleEndian.Uint32(d[32:36])
	return t, true
}

// TLSScope says how much of a TDS 7.x connection TLS protects after the
// PRELOGIN exchange.
type TLSScope uint8

// TLS scopes, from the negotiation table of MS-TDS §2.2.6.5.
const (
	// ScopeNone: no TLS at all.
	ScopeNone TLSScope = iota
	// ScopeLoginOnly: TLS handshake, then only the first packet of LOGIN7
	// travels inside TLS; both sides continue in plaintext.
	ScopeLoginOnly
	// ScopeSession: the whole session is encrypted.
	ScopeSession
	// ScopeTerminated: the server closes the connection.
	ScopeTerminated
)

// String returns "none", "login-only", "session" or "terminated".
func (s TLSScope) String() string {
	switch s {
	case ScopeNone:
		return "none"
	case ScopeLoginOnly:
		return "login-only"
	case ScopeSession:
		return "session"
	case ScopeTerminated:
		return "terminated"
	}
	return "TLSScope(" + strconv.Itoa(int(s)) + ")"
}

// NegotiateEncryption applies the server's side of the ENCRYPTION
// negotiation table (MS-TDS §2.2.6.5; docs/protocol.md "Who encrypts what"):
// given what the client sent and how the server is configured, it returns
// the value the server replies with and what TLS then covers.
//
// The server setting is OFF, ON, NOT_SUP or REQ; REQ behaves like ON
// ("force encryption"). The CLIENT_CERT bit is ignored on both sides.
//
//	client \ server | OFF                 | ON / REQ           | NOT_SUP
//	OFF             | OFF, login-only     | REQ, session       | NOT_SUP, none
//	ON              | ON, session         | ON, session        | NOT_SUP, terminated
//	NOT_SUP         | NOT_SUP, none       | REQ, terminated    | NOT_SUP, none
//	REQ             | ON, session         | ON, session        | NOT_SUP, terminated
//
// Choices outside the table (documented, not from the spec):
//   - client STRICT (0x04, TDS 8.0): TLS already wraps the TCP connection
//     before PRELOGIN, so the scope is session and the reply is NOT_SUP,
//     which tells any 7.x-style client not to start a second handshake.
//     Unverified against SQL Server 2022.
//   - any other client value, or a server setting outside the four above:
//     the connection fails closed, reply NOT_SUP, scope terminated.
func NegotiateEncryption(client, server Encryption) (reply Encryption, scope TLSScope) {
	srv := server.Base()
	if srv == EncryptReq {
		srv = EncryptOn
	}
	cli := client.Base()
	if cli == EncryptStrict {
		return EncryptNotSup, ScopeSession
	}
	switch srv {
	case EncryptOff:
		switch cli {
		case EncryptOff:
			return EncryptOff, ScopeLoginOnly
		case EncryptOn, EncryptReq:
			return EncryptOn, ScopeSession
		case EncryptNotSup:
			return EncryptNotSup, ScopeNone
		}
	case EncryptOn:
		switch cli {
		case EncryptOff:
			return EncryptReq, ScopeSession
		case EncryptOn, EncryptReq:
			return EncryptOn, ScopeSession
		case EncryptNotSup:
			return EncryptReq, ScopeTerminated
		}
	case EncryptNotSup:
		switch cli {
		case EncryptOff, EncryptNotSup:
			return EncryptNotSup, ScopeNone
		case EncryptOn, EncryptReq:
			return EncryptNotSup, ScopeTerminated
		}
	}
	return EncryptNotSup, ScopeTerminated
}

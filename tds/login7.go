package tds

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Password holds a LOGIN7 password in clear text. It exists so the password
// can travel inside a Login7 without ever reaching a log line, an error, a
// %v/%+v/%#v/%s/%q/%x, JSON or text encoding: all of those print
// "[REDACTED]" (or "[EMPTY]" when no password is set). Only Reveal returns
// the secret. The zero value is the empty password.
type Password struct{ s string }

const (
	redacted      = "[REDACTED]"
	redactedEmpty = "[EMPTY]"
)

// NewPassword wraps s.
func NewPassword(s string) Password { return Password{s: s} }

// Reveal returns the clear-text password. Never log the result.
func (p Password) Reveal() string { return p.s }

// IsSet reports whether the password is non-empty.
func (p Password) IsSet() bool { return p.s != "" }

func (p Password) redacted() string {
	if p.s == "" {
		return redactedEmpty
	}
	return redacted
}

// String returns "[REDACTED]", or "[EMPTY]" for an empty password.
func (p Password) String() string { return p.redacted() }

// GoString returns the same as String, so %#v cannot leak the password.
func (p Password) GoString() string { return p.redacted() }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %s, %q, %x
// ...) prints the redacted form, including when Password is a struct field.
func (p Password) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.redacted()) }

// MarshalText returns the redacted form (used by encoding/json map keys,
// YAML, zap's text encoders...).
func (p Password) MarshalText() ([]byte, error) { return []byte(p.redacted()), nil }

// MarshalJSON returns the redacted form as a JSON string.
func (p Password) MarshalJSON() ([]byte, error) { return []byte(`"` + p.redacted() + `"`), nil }

// OptionFlags3 bits used by this package, MS-TDS §2.2.6.4.
const (
	// OptionFlags3ChangePassword (fChangePassword) asks the server to change
	// the password to ChangePassword.
	OptionFlags3ChangePassword uint8 = 0x01
	// OptionFlags3Extension (fExtension) says ibExtension points to a DWORD
	// holding the offset of the FeatureExt block (TDS 7.4).
	OptionFlags3Extension uint8 = 0x10
)

// Login7 fixed-part sizes (MS-TDS §2.2.6.4): TDS 7.2 added ibChangePassword,
// cchChangePassword and cbSSPILong to the 86 bytes of TDS 7.0/7.1.
const (
	Login7FixedLen   = 94
	login7FixedLen71 = 86
)

// Login7 is the LOGIN7 message (MS-TDS §2.2.6.4), packet type 0x10. All
// integers are little-endian on the wire; strings are UCS-2LE, addressed by
// (offset, length in characters) pairs from the start of the message.
//
// Printing or JSON-encoding a Login7 never shows the passwords (see Password).
type Login7 struct {
	TDSVersion     uint32 // e.g. VersionTDS74, VersionTDS80
	PacketSize     uint32 // requested packet size
	ClientProgVer  uint32 // see ClientProgVersion
	ClientPID      uint32
	ConnectionID   uint32
	OptionFlags1   uint8
	OptionFlags2   uint8
	TypeFlags      uint8
	OptionFlags3   uint8
	ClientTimeZone int32 // minutes from UTC
	ClientLCID     uint32

	HostName       string
	UserName       string
	Password       Password
	AppName        string
	ServerName     string
	LibraryName    string // ibCltIntName: the client library, e.g. "go-mssqldb"
	Language       string
	Database       string
	ClientID       [6]byte // usually a MAC address
	SSPI           []byte
	AttachDBFile   string
	ChangePassword Password

	// FeatureExt is the raw FEATUREEXT block (feature id, DWORD length,
	// data; ..., 0xFF terminator) when OptionFlags3 has fExtension set.
	// It runs to the terminator, or to the end of the message if the
	// block cannot be walked; nil when absent or unreachable.
	FeatureExt []byte
}

// Errors returned by ParseLogin7; test with errors.Is.
var (
	ErrLogin7Short  = errors.New("tds: LOGIN7 shorter than its fixed part")
	ErrLogin7Length = errors.New("tds: LOGIN7 declared length does not fit the payload")
	ErrLogin7Bounds = errors.New("tds: LOGIN7 field out of bounds")
	ErrLogin7Large  = errors.New("tds: LOGIN7 too large for 16-bit offsets")
)

// login7FixedFor returns the fixed-part size a client of version v sends.
func login7FixedFor(v uint32) int {
	switch v >> 24 {
	case 0x70, 0x71: // TDS 7.0, 7.1
		return login7FixedLen71
	}
	return Login7FixedLen
}

// The (offset, length) pairs of LOGIN7's OffsetLength block, in wire order
// (MS-TDS §2.2.6.4): nine pairs, ClientID, then SSPI, AttachDBFile and
// (TDS 7.2+) ChangePassword. ibExtension shares the slot of the old
// ibUnused/cbUnused pair.
const (
	l7HostName = iota
	l7UserName
	l7Password
	l7AppName
	l7ServerName
	l7Extension
	l7LibraryName
	l7Language
	l7Database
	l7SSPI
	l7AttachDBFile
	l7ChangePassword
	l7Pairs               // number of pairs
	l7PairsBeforeClientID = l7SSPI
)

// login7PairNames names each pair in errors.
var login7PairNames = [l7Pairs]string{"HostName", "UserName", "Password", "AppName", "ServerName",
	"Extension", "LibraryName", "Language", "Database", "SSPI", "AttachDBFile", "ChangePassword"}

// ParseLogin7 decodes a LOGIN7 payload (the message without packet headers).
// It checks the declared Length against the payload (bytes after Length are
// ignored) and every (offset, length) pair against Length; a pair with
// length 0 is accepted whatever its offset, since clients differ in what
// they put there. Password fields are de-obfuscated into Password values.
func ParseLogin7(payload []byte) (*Login7, error) {
	if len(payload) < 8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrLogin7Short, len(payload))
	}
	declared := binary.LittleEndian.Uint32(payload)
	if uint64(declared) > uint64(len(payload)) {
		return nil, fmt.Errorf("%w: declared %d, have %d", ErrLogin7Length, declared, len(payload))
	}
	data := payload[:declared]
	l := &Login7{TDSVersion: binary.LittleEndian.Uint32(payload[4:])}
	fixed := login7FixedFor(l.TDSVersion)
	if len(data) < fixed {
		return nil, fmt.Errorf("%w: declared length %d < %d (TDS version 0x%08X)", ErrLogin7Short, len(data), fixed, l.TDSVersion)
	}

	c := leCursor(data[8:fixed])
	var tz uint32
	c.u32(&l.PacketSize)
	c.u32(&l.ClientProgVer)
	c.u32(&l.ClientPID)
	c.u32(&l.ConnectionID)
	c.u8(&l.OptionFlags1)
	c.u8(&l.OptionFlags2)
	c.u8(&l.TypeFlags)
	c.u8(&l.OptionFlags3)
	c.u32(&tz)
	l.ClientTimeZone = int32(tz)
	c.u32(&l.ClientLCID)

	// The (offset, length) pairs in wire order, MS-TDS §2.2.6.4 OffsetLength.
	type pair struct{ off, n uint16 }
	var p [l7Pairs]pair
	for i := range l7PairsBeforeClientID {
		c.u16(&p[i].off)
		c.u16(&p[i].n)
	}
	var cid []byte
	c.bytes(&cid, 6)
	copy(l.ClientID[:], cid)
	for _, i := range []int{l7SSPI, l7AttachDBFile} {
		c.u16(&p[i].off)
		c.u16(&p[i].n)
	}
	var sspiLong uint32
	if fixed == Login7FixedLen {
		c.u16(&p[l7ChangePassword].off)
		c.u16(&p[l7ChangePassword].n)
		c.u32(&sspiLong)
	}

	// field returns nbytes at off, checked against the declared length.
	field := func(i int, nbytes int) ([]byte, error) {
		if nbytes == 0 {
			return nil, nil
		}
		start := int(p[i].off)
		end := start + nbytes
		if end > len(data) {
			return nil, fmt.Errorf("%w: %s at %d+%d, length %d", ErrLogin7Bounds, login7PairNames[i], start, nbytes, len(data))
		}
		return data[start:end:end], nil
	}
	str := func(i int, dst *string) error {
		b, err := field(i, 2*int(p[i].n)) // lengths count UCS-2 characters
		if err != nil {
			return err
		}
		*dst = decodeUCS2(b)
		return nil
	}
	pw := func(i int, dst *Password) error {
		b, err := field(i, 2*int(p[i].n))
		if err != nil {
			return err
		}
		*dst = Password{s: decodeUCS2(DeobfuscatePassword(b))}
		return nil
	}
	for _, f := range []struct {
		i int
		s *string
	}{{l7HostName, &l.HostName}, {l7UserName, &l.UserName}, {l7AppName, &l.AppName},
		{l7ServerName, &l.ServerName}, {l7LibraryName, &l.LibraryName}, {l7Language, &l.Language},
		{l7Database, &l.Database}, {l7AttachDBFile, &l.AttachDBFile}} {
		if err := str(f.i, f.s); err != nil {
			return nil, err
		}
	}
	if err := pw(l7Password, &l.Password); err != nil {
		return nil, err
	}
	if err := pw(l7ChangePassword, &l.ChangePassword); err != nil {
		return nil, err
	}

	// cbSSPI == USHRT_MAX defers to cbSSPILong when that is non-zero
	// (MS-TDS §2.2.6.4, cbSSPILong).
	sspiLen := int(p[l7SSPI].n)
	if sspiLen == 0xFFFF && sspiLong > 0 {
		if uint64(sspiLong) > uint64(len(data)) {
			return nil, fmt.Errorf("%w: cbSSPILong %d > length %d", ErrLogin7Bounds, sspiLong, len(data))
		}
		sspiLen = int(sspiLong)
	}
	sspi, err := field(l7SSPI, sspiLen)
	if err != nil {
		return nil, err
	}
	l.SSPI = sspi

	if l.OptionFlags3&OptionFlags3Extension != 0 {
		l.FeatureExt = login7FeatureExt(data, int(p[l7Extension].off), int(p[l7Extension].n))
	}
	return l, nil
}

// login7FeatureExt follows ibExtension to the DWORD offset of the FEATUREEXT
// block (MS-TDS §2.2.6.4) and returns the block. It is lenient: anything odd
// yields nil, since the rest of LOGIN7 is still worth reporting.
func login7FeatureExt(data []byte, ibExt, cbExt int) []byte {
	if cbExt < 4 || ibExt+4 > len(data) {
		return nil
	}
	off := uint64(binary.LittleEndian.Uint32(data[ibExt:]))
	if off >= uint64(len(data)) {
		return nil
	}
	block := data[off:]
	// Walk (id, DWORD len, data) entries to the 0xFF terminator.
	c := leCursor(block)
	for {
		var id uint8
		if !c.u8(&id) {
			return block
		}
		if id == 0xFF {
			end := len(block) - len(c)
			return block[:end:end]
		}
		var n uint32
		if !c.u32(&n) || uint64(n) > uint64(len(c)) {
			return block
		}
		c.skip(int(n))
	}
}

// Marshal encodes l as a LOGIN7 payload. Variable data is laid out in the
// order go-mssqldb v1.11.2 uses (host, user, password, app, server, library,
// language, database, SSPI, attach-db file, change password, then the
// extension DWORD and FeatureExt), so a message from that client
// re-encodes byte for byte; an SSPI blob too long for that order goes after
// the extension DWORD instead. A TDS 7.0/7.1 TDSVersion gets the 86-byte fixed
// part (no ChangePassword, no cbSSPILong). If FeatureExt is non-empty the
// fExtension bit is set; other flags are written as given. Marshal returns
// nil if the data cannot be addressed with LOGIN7's 16-bit offsets; use
// Append to get the error.
func (l *Login7) Marshal() []byte {
	b, err := l.Append(nil)
	if err != nil {
		return nil
	}
	return b
}

// Append appends the encoded LOGIN7 payload to b (see Marshal).
func (l *Login7) Append(b []byte) ([]byte, error) {
	fixed := login7FixedFor(l.TDSVersion)
	if fixed == login7FixedLen71 && l.ChangePassword.IsSet() {
		return b, fmt.Errorf("%w: TDS 7.0/7.1 LOGIN7 has no ChangePassword or long SSPI", ErrLogin7Large)
	}
	vars, e, pos, err := l.layout(fixed, false)
	if err != nil {
		if vars, e, pos, err = l.layout(fixed, true); err != nil {
			return b, err
		}
	}
	flags3 := l.OptionFlags3
	if len(l.FeatureExt) > 0 {
		flags3 |= OptionFlags3Extension
	}
	sspiShort, sspiLong := e[l7SSPI].n, 0
	if sspiShort >= 0xFFFF {
		sspiShort, sspiLong = 0xFFFF, e[l7SSPI].n
	}
	e[l7SSPI].n = sspiShort

	b = binary.LittleEndian.AppendUint32(b, uint32(pos))
	b = binary.LittleEndian.AppendUint32(b, l.TDSVersion)
	b = binary.LittleEndian.AppendUint32(b, l.PacketSize)
	b = binary.LittleEndian.AppendUint32(b, l.ClientProgVer)
	b = binary.LittleEndian.AppendUint32(b, l.ClientPID)
	b = binary.LittleEndian.AppendUint32(b, l.ConnectionID)
	b = append(b, l.OptionFlags1, l.OptionFlags2, l.TypeFlags, flags3)
	b = binary.LittleEndian.AppendUint32(b, uint32(l.ClientTimeZone))
	b = binary.LittleEndian.AppendUint32(b, l.ClientLCID)
	appendPair := func(x l7Entry) {
		b = binary.LittleEndian.AppendUint16(b, uint16(x.off))
		b = binary.LittleEndian.AppendUint16(b, uint16(x.n))
	}
	for i := range l7PairsBeforeClientID {
		appendPair(e[i])
	}
	b = append(b, l.ClientID[:]...)
	appendPair(e[l7SSPI])
	appendPair(e[l7AttachDBFile])
	if fixed == Login7FixedLen {
		appendPair(e[l7ChangePassword])
		b = binary.LittleEndian.AppendUint32(b, uint32(sspiLong))
	}
	return append(b, vars...), nil
}

// l7Entry is where one variable field of a LOGIN7 goes: its offset from
// the start of the message and its length (in characters for strings).
type l7Entry struct{ off, n int }

// layout places the variable data of Append (MS-TDS §2.2.6.4,
// OffsetLength). In go-mssqldb's order a long SSPI blob would push the
// later fields past 16-bit offsets, so the fallback (sspiLast) moves SSPI
// after everything a 16-bit offset must reach.
func (l *Login7) layout(fixed int, sspiLast bool) (vars []byte, e [l7Pairs]l7Entry, pos int, err error) {
	pos = fixed
	put := func(i int, enc []byte, n int) {
		e[i] = l7Entry{pos, n}
		vars = append(vars, enc...)
		pos += len(enc)
	}
	putStr := func(i int, s string) { put(i, appendUCS2(nil, s), ucs2Len(s)) }
	putPw := func(i int, p Password) {
		u := appendUCS2(nil, p.s)
		put(i, ObfuscatePassword(u), len(u)/2)
	}
	putStr(l7HostName, l.HostName)
	putStr(l7UserName, l.UserName)
	putPw(l7Password, l.Password)
	putStr(l7AppName, l.AppName)
	putStr(l7ServerName, l.ServerName)
	putStr(l7LibraryName, l.LibraryName)
	putStr(l7Language, l.Language)
	putStr(l7Database, l.Database)
	if !sspiLast {
		put(l7SSPI, l.SSPI, len(l.SSPI))
	}
	putStr(l7AttachDBFile, l.AttachDBFile)
	if fixed == Login7FixedLen {
		putPw(l7ChangePassword, l.ChangePassword)
	}
	if len(l.FeatureExt) > 0 {
		e[l7Extension] = l7Entry{pos, 4}
		vars = append(vars, 0, 0, 0, 0) // FeatureExt offset, filled below
		pos += 4
	}
	if sspiLast {
		put(l7SSPI, l.SSPI, len(l.SSPI))
	}
	if len(l.FeatureExt) > 0 {
		binary.LittleEndian.PutUint32(vars[e[l7Extension].off-fixed:], uint32(pos))
		vars = append(vars, l.FeatureExt...)
		pos += len(l.FeatureExt)
	}
	for i, x := range e {
		if i == l7SSPI {
			// SSPI may be longer than 16 bits through cbSSPILong.
			if x.off > 0xFFFF || (fixed == login7FixedLen71 && x.n > 0xFFFF) {
				return nil, e, 0, fmt.Errorf("%w: SSPI at %d+%d", ErrLogin7Large, x.off, x.n)
			}
			continue
		}
		if x.off > 0xFFFF || x.n > 0xFFFF {
			return nil, e, 0, fmt.Errorf("%w: field %s at %d+%d", ErrLogin7Large, login7PairNames[i], x.off, x.n)
		}
	}
	if uint64(pos) > 0xFFFFFFFF {
		return nil, e, 0, fmt.Errorf("%w: total %d", ErrLogin7Large, pos)
	}
	return vars, e, pos, nil
}

// ObfuscatePassword applies LOGIN7's password encoding to UCS-2LE bytes:
// per byte, swap the nibbles then XOR 0xA5 (MS-TDS §2.2.6.4). It is
// reversible and protects nothing. The input is not modified.
func ObfuscatePassword(ucs2 []byte) []byte {
	out := make([]byte, len(ucs2))
	for i, c := range ucs2 {
		out[i] = (c<<4 | c>>4) ^ 0xA5
	}
	return out
}

// DeobfuscatePassword reverses ObfuscatePassword: XOR 0xA5, then swap the
// nibbles. The input is not modified.
func DeobfuscatePassword(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		c ^= 0xA5
		out[i] = c<<4 | c>>4
	}
	return out
}

// ClientProgVersion formats ClientProgVer as go-mssqldb encodes its driver
// version, major<<24 | minor<<16 | revision (0x010B0002 is "1.11.2").
// Other client libraries pack this field differently, so treat the result
// as a hint.
func (l *Login7) ClientProgVersion() string {
	v := l.ClientProgVer
	return fmt.Sprintf("%d.%d.%d", v>>24, (v>>16)&0xFF, v&0xFFFF)
}

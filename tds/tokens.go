package tds

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// TokenType is the first byte of a token in a tabular result stream
// (MS-TDS §2.2.7).
type TokenType uint8

// Token types, MS-TDS §2.2.7. They are untyped constants so they compare
// with a raw byte (payload[0] == TokenLoginAck) and convert to TokenType
// alike.
const (
	TokenReturnStatus   = 0x79
	TokenColMetadata    = 0x81
	TokenAltMetadata    = 0x88
	TokenDataClassif    = 0xA3
	TokenTabName        = 0xA4
	TokenColInfo        = 0xA5
	TokenOrder          = 0xA9
	TokenError          = 0xAA
	TokenInfo           = 0xAB
	TokenReturnValue    = 0xAC
	TokenLoginAck       = 0xAD
	TokenFeatureExtAck  = 0xAE
	TokenRow            = 0xD1
	TokenNBCRow         = 0xD2
	TokenAltRow         = 0xD3
	TokenEnvChange      = 0xE3
	TokenSessionState   = 0xE4
	TokenSSPI           = 0xED
	TokenFedAuthInfo    = 0xEE
	TokenDone           = 0xFD
	TokenDoneProc       = 0xFE
	TokenDoneInProc     = 0xFF
	tokenOffset         = 0x78 // TDS 7.1 and earlier only
	featureExtTerminate = 0xFF
)

var tokenNames = map[TokenType]string{
	TokenReturnStatus:  "RETURNSTATUS",
	TokenColMetadata:   "COLMETADATA",
	TokenAltMetadata:   "ALTMETADATA",
	TokenDataClassif:   "DATACLASSIFICATION",
	TokenTabName:       "TABNAME",
	TokenColInfo:       "COLINFO",
	TokenOrder:         "ORDER",
	TokenError:         "ERROR",
	TokenInfo:          "INFO",
	TokenReturnValue:   "RETURNVALUE",
	TokenLoginAck:      "LOGINACK",
	TokenFeatureExtAck: "FEATUREEXTACK",
	TokenRow:           "ROW",
	TokenNBCRow:        "NBCROW",
	TokenAltRow:        "ALTROW",
	TokenEnvChange:     "ENVCHANGE",
	TokenSessionState:  "SESSIONSTATE",
	TokenSSPI:          "SSPI",
	TokenFedAuthInfo:   "FEDAUTHINFO",
	TokenDone:          "DONE",
	TokenDoneProc:      "DONEPROC",
	TokenDoneInProc:    "DONEINPROC",
	tokenOffset:        "OFFSET",
}

// String returns the spec name of the token, or 0xNN when unknown.
func (t TokenType) String() string {
	if n, ok := tokenNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02X", uint8(t))
}

// appendBVarChar appends a B_VARCHAR (MS-TDS §2.2.5.1.3): a one-byte count
// of UCS-2 characters, then the characters. Strings longer than 255 UTF-16
// code units are truncated (without splitting a surrogate pair) because the
// count cannot say more.
func appendBVarChar(b []byte, s string) []byte {
	u := appendUCS2(nil, s)
	if len(u) > 2*0xFF {
		u = u[:2*0xFF]
		// Drop a dangling high surrogate.
		if hi := binary.LittleEndian.Uint16(u[len(u)-2:]); hi >= 0xD800 && hi < 0xDC00 {
			u = u[:len(u)-2]
		}
	}
	b = append(b, byte(len(u)/2))
	return append(b, u...)
}

// appendBVarByte appends a B_VARBYTE, truncated at 255 bytes.
func appendBVarByte(b []byte, v []byte) []byte {
	if len(v) > 0xFF {
		v = v[:0xFF]
	}
	b = append(b, byte(len(v)))
	return append(b, v...)
}

// appendLenToken appends tok, a two-byte length placeholder and body(b),
// then fills the length in. Bodies over 65535 bytes cannot be expressed;
// callers keep their bodies far below that (strings are capped).
func appendLenToken(b []byte, tok byte, body func([]byte) []byte) []byte {
	b = append(b, tok, 0, 0)
	start := len(b)
	b = body(b)
	n := len(b) - start
	binary.LittleEndian.PutUint16(b[start-2:], uint16(min(n, 0xFFFF)))
	return b
}

// LoginAckInterfaceTSQL is the LOGINACK Interface value for T-SQL.
const LoginAckInterfaceTSQL uint8 = 0x01

// LoginAck is the body of a LOGINACK token (MS-TDS §2.2.7.14).
type LoginAck struct {
	Interface uint8 // LoginAckInterfaceTSQL
	// TDSVersion is written big-endian, unlike LOGIN7's TDSVersion
	// (0x74000004 is 74 00 00 04 here).
	TDSVersion  uint32
	ProgName    string  // e.g. "Microsoft SQL Server"; at most 255 characters
	ProgVersion [4]byte // major, minor, build high, build low
}

// AppendLoginAck appends a LOGINACK token.
func AppendLoginAck(b []byte, a LoginAck) []byte {
	return appendLenToken(b, TokenLoginAck, func(b []byte) []byte {
		b = append(b, a.Interface)
		b = binary.BigEndian.AppendUint32(b, a.TDSVersion)
		b = appendBVarChar(b, a.ProgName)
		return append(b, a.ProgVersion[:]...)
	})
}

// EnvChangeType is the type byte of an ENVCHANGE token (MS-TDS §2.2.7.9).
type EnvChangeType uint8

// ENVCHANGE types, MS-TDS §2.2.7.9.
const (
	EnvDatabase      EnvChangeType = 1
	EnvLanguage      EnvChangeType = 2
	EnvCharset       EnvChangeType = 3
	EnvPacketSize    EnvChangeType = 4
	EnvSortID        EnvChangeType = 5
	EnvSortFlags     EnvChangeType = 6
	EnvSQLCollation  EnvChangeType = 7
	EnvBeginTran     EnvChangeType = 8
	EnvCommitTran    EnvChangeType = 9
	EnvRollbackTran  EnvChangeType = 10
	EnvEnlistDTC     EnvChangeType = 11
	EnvDefectTran    EnvChangeType = 12
	EnvMirrorPartner EnvChangeType = 13
	EnvPromoteTran   EnvChangeType = 15
	EnvTranMgrAddr   EnvChangeType = 16
	EnvTranEnded     EnvChangeType = 17
	EnvResetConnAck  EnvChangeType = 18
	EnvUserInstance  EnvChangeType = 19
	EnvRouting       EnvChangeType = 20
)

var envChangeNames = map[EnvChangeType]string{
	EnvDatabase: "DATABASE", EnvLanguage: "LANGUAGE", EnvCharset: "CHARSET",
	EnvPacketSize: "PACKETSIZE", EnvSortID: "SORTID", EnvSortFlags: "SORTFLAGS",
	EnvSQLCollation: "SQLCOLLATION", EnvBeginTran: "BEGINTRAN", EnvCommitTran: "COMMITTRAN",
	EnvRollbackTran: "ROLLBACKTRAN", EnvEnlistDTC: "ENLISTDTC", EnvDefectTran: "DEFECTTRAN",
	EnvMirrorPartner: "MIRRORPARTNER", EnvPromoteTran: "PROMOTETRAN", EnvTranMgrAddr: "TRANMGRADDR",
	EnvTranEnded: "TRANENDED", EnvResetConnAck: "RESETCONNACK", EnvUserInstance: "USERINSTANCE",
	EnvRouting: "ROUTING",
}

// String returns the type's name, or its number when unknown.
func (t EnvChangeType) String() string {
	if n, ok := envChangeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("ENVCHANGE(%d)", uint8(t))
}

// envValueKind says how an ENVCHANGE type encodes its values (§2.2.7.9).
type envValueKind uint8

const (
	envString  envValueKind = iota // B_VARCHAR new, B_VARCHAR old
	envBytes                       // B_VARBYTE new, B_VARBYTE old
	envLBytes                      // L_VARBYTE new, B_VARBYTE old (PROMOTETRAN)
	envRouting                     // US_VARBYTE new, US_VARBYTE old (ROUTING)
	envUnknown
)

func (t EnvChangeType) kind() envValueKind {
	switch t {
	case EnvDatabase, EnvLanguage, EnvCharset, EnvPacketSize, EnvSortID, EnvSortFlags,
		EnvMirrorPartner, EnvUserInstance:
		return envString
	case EnvSQLCollation, EnvBeginTran, EnvCommitTran, EnvRollbackTran, EnvEnlistDTC,
		EnvDefectTran, EnvTranMgrAddr, EnvTranEnded, EnvResetConnAck:
		return envBytes
	case EnvPromoteTran:
		return envLBytes
	case EnvRouting:
		return envRouting
	}
	return envUnknown
}

// EnvChange is one environment change from an ENVCHANGE token. String-valued
// types (database, language, charset, packet size, sort id/flags, mirror
// partner, user instance) fill New and Old; the others fill NewBytes and
// OldBytes with the raw values (a 5-byte collation, a transaction
// descriptor, the ROUTING value after its length...). An unknown type keeps
// the rest of the token in NewBytes.
type EnvChange struct {
	Type               EnvChangeType
	New, Old           string
	NewBytes, OldBytes []byte
}

// AppendEnvChange appends an ENVCHANGE token whose values are B_VARCHAR
// UCS-2 strings (database, language, charset, packet size, ...; §2.2.7.9).
// Use AppendEnvChangeBytes for byte-valued types such as EnvSQLCollation.
func AppendEnvChange(b []byte, t EnvChangeType, newVal, oldVal string) []byte {
	return appendLenToken(b, TokenEnvChange, func(b []byte) []byte {
		b = append(b, byte(t))
		b = appendBVarChar(b, newVal)
		return appendBVarChar(b, oldVal)
	})
}

// AppendEnvChangeBytes appends an ENVCHANGE token whose values are
// B_VARBYTE (collation, transaction types, reset-connection ack; §2.2.7.9).
// Values longer than 255 bytes are truncated.
func AppendEnvChangeBytes(b []byte, t EnvChangeType, newVal, oldVal []byte) []byte {
	return appendLenToken(b, TokenEnvChange, func(b []byte) []byte {
		b = append(b, byte(t))
		b = appendBVarByte(b, newVal)
		return appendBVarByte(b, oldVal)
	})
}

// AppendTo appends e as one ENVCHANGE token, encoding the values the way
// its type requires (§2.2.7.9): B_VARCHAR New/Old for string types,
// B_VARBYTE NewBytes/OldBytes for byte types, L_VARBYTE/B_VARBYTE for
// PROMOTETRAN, US_VARBYTE/US_VARBYTE for ROUTING, and NewBytes as is after
// the type byte for unknown types. It is the inverse of what the decoders
// produce, so a decoded ENVCHANGE can be re-encoded. Values too long for
// the token's 16-bit length give a malformed token; decoded values always fit.
func (e EnvChange) AppendTo(b []byte) []byte {
	switch e.Type.kind() {
	case envString:
		return AppendEnvChange(b, e.Type, e.New, e.Old)
	case envBytes:
		return AppendEnvChangeBytes(b, e.Type, e.NewBytes, e.OldBytes)
	}
	return appendLenToken(b, TokenEnvChange, func(b []byte) []byte {
		b = append(b, byte(e.Type))
		switch e.Type.kind() {
		case envLBytes:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e.NewBytes)))
			b = append(b, e.NewBytes...)
			return appendBVarByte(b, e.OldBytes)
		case envRouting:
			b = binary.LittleEndian.AppendUint16(b, uint16(len(e.NewBytes)))
			b = append(b, e.NewBytes...)
			b = binary.LittleEndian.AppendUint16(b, uint16(len(e.OldBytes)))
			return append(b, e.OldBytes...)
		}
		return append(b, e.NewBytes...)
	})
}

// Collation is the 5-byte COLLATION structure (MS-TDS §2.2.5.1.2): LCID and
// flags (4 bytes, little-endian), then the SQL sort id.
type Collation [5]byte

// DefaultCollation returns SQL_Latin1_General_CP1_CI_AS (LCID 0x0409,
// sort id 52), the collation SQL Server installs by default in the US.
func DefaultCollation() Collation { return Collation{0x09, 0x04, 0xD0, 0x00, 0x34} }

// ServerMessage is the body of an ERROR or INFO token (MS-TDS §2.2.7.10,
// §2.2.7.13), TDS 7.2+ layout (4-byte line number).
type ServerMessage struct {
	Number     int32 // e.g. 18456 login failed
	State      uint8
	Class      uint8 // severity; ERROR uses > 10, INFO <= 10
	Message    string
	ServerName string
	ProcName   string
	Line       int32
}

func appendServerMessage(b []byte, tok byte, m ServerMessage) []byte {
	return appendLenToken(b, tok, func(b []byte) []byte {
		srv := appendBVarChar(nil, m.ServerName)
		proc := appendBVarChar(nil, m.ProcName)
		// The token length is 16 bits: the message gets what the fixed
		// fields (number 4, state 1, class 1, count 2, line 4) and the
		// names leave, so a long message is cut rather than the stream
		// corrupted.
		room := (0xFFFF - 12 - len(srv) - len(proc)) / 2
		u := appendUCS2(nil, m.Message)
		if len(u) > 2*room {
			u = u[:2*room]
			if hi := binary.LittleEndian.Uint16(u[len(u)-2:]); hi >= 0xD800 && hi < 0xDC00 {
				u = u[:len(u)-2]
			}
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(m.Number))
		b = append(b, m.State, m.Class)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(u)/2))
		b = append(b, u...)
		b = append(b, srv...)
		b = append(b, proc...)
		return binary.LittleEndian.AppendUint32(b, uint32(m.Line))
	})
}

// AppendError appends an ERROR token. Server and procedure names are cut at
// 255 characters, the message where the token's 16-bit length runs out
// (about 32000 characters).
func AppendError(b []byte, m ServerMessage) []byte { return appendServerMessage(b, TokenError, m) }

// AppendInfo appends an INFO token (same layout as ERROR).
func AppendInfo(b []byte, m ServerMessage) []byte { return appendServerMessage(b, TokenInfo, m) }

// DoneStatus is the status bit set of DONE, DONEPROC and DONEINPROC
// (MS-TDS §2.2.7.6).
type DoneStatus uint16

// DONE status bits, MS-TDS §2.2.7.6.
const (
	DoneFinal    DoneStatus = 0x000
	DoneMore     DoneStatus = 0x001
	DoneError    DoneStatus = 0x002
	DoneInXact   DoneStatus = 0x004
	DoneCount    DoneStatus = 0x010
	DoneAttn     DoneStatus = 0x020
	DoneSrvError DoneStatus = 0x100
)

// String lists the set bits, e.g. "MORE|COUNT"; "FINAL" when none is set.
func (s DoneStatus) String() string {
	if s == DoneFinal {
		return "FINAL"
	}
	var parts []string
	for _, f := range []struct {
		bit  DoneStatus
		name string
	}{{DoneMore, "MORE"}, {DoneError, "ERROR"}, {DoneInXact, "INXACT"}, {DoneCount, "COUNT"},
		{DoneAttn, "ATTN"}, {DoneSrvError, "SRVERROR"}} {
		if s&f.bit != 0 {
			parts = append(parts, f.name)
			s &^= f.bit
		}
	}
	if s != 0 {
		parts = append(parts, fmt.Sprintf("0x%X", uint16(s)))
	}
	return strings.Join(parts, "|")
}

// CurCmd values seen in DONE tokens (not listed by MS-TDS; go-mssqldb names
// 0xC1 cmdSelect).
const (
	CurCmdNone   uint16 = 0x00
	CurCmdSelect uint16 = 0xC1
)

// DoneLen is the size of a DONE/DONEPROC/DONEINPROC token including its type
// byte in TDS 7.2+ (status 2, curcmd 2, row count 8).
const DoneLen = 13

// Done is a decoded DONE, DONEPROC or DONEINPROC token.
type Done struct {
	Token    TokenType // TokenDone, TokenDoneProc or TokenDoneInProc
	Status   DoneStatus
	CurCmd   uint16
	RowCount uint64 // meaningful when Status has DoneCount
}

// AppendDone appends a DONE-family token (tok is TokenDone, TokenDoneProc or
// TokenDoneInProc) with the TDS 7.2+ 8-byte row count (MS-TDS §2.2.7.6).
func AppendDone(b []byte, tok byte, status DoneStatus, curCmd uint16, rowCount uint64) []byte {
	b = append(b, tok)
	b = binary.LittleEndian.AppendUint16(b, uint16(status))
	b = binary.LittleEndian.AppendUint16(b, curCmd)
	return binary.LittleEndian.AppendUint64(b, rowCount)
}

// FeatureAck is one entry of a FEATUREEXTACK token (MS-TDS §2.2.7.11).
type FeatureAck struct {
	ID   uint8
	Data []byte
}

// AppendFeatureExtAck appends a FEATUREEXTACK token: each (id, DWORD length,
// data), then the 0xFF terminator. Entries with ID 0xFF are skipped.
func AppendFeatureExtAck(b []byte, acks []FeatureAck) []byte {
	b = append(b, TokenFeatureExtAck)
	for _, a := range acks {
		if a.ID == featureExtTerminate {
			continue
		}
		b = append(b, a.ID)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(a.Data)))
		b = append(b, a.Data...)
	}
	return append(b, featureExtTerminate)
}

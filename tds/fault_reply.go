package tds

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Replies a proxy writes in the server's place (docs/tds-faults.md): a
// server error ending a request or a login, and the routing ENVCHANGE of a
// redirecting gateway.

// AppendErrorDone appends what a server sends when a request or a login
// fails with one error: ERROR (MS-TDS §2.2.7.10) then a final DONE with
// DONE_ERROR set (§2.2.7.6), as SQL Server ends a batch chosen as deadlock
// victim (1205) or a refused login (18456).
func AppendErrorDone(b []byte, m ServerMessage) []byte {
	b = AppendError(b, m)
	return AppendDone(b, TokenDone, DoneError, CurCmdNone, 0)
}

// ErrorReply is one complete TABULAR_RESULT message (§2.2.3.1.1 type 4,
// EOM on its last packet) holding ERROR + DONE(error), split into packets
// of at most packetSize bytes (0: DefaultPacketSize).
func ErrorReply(m ServerMessage, packetSize int, spid uint16) []byte {
	w := Writer{PacketSize: packetSize, SPID: spid}
	return w.AppendMessage(nil, PacketReply, 0, AppendErrorDone(nil, m))
}

// Routing is the value of a ROUTING ENVCHANGE (§2.2.7.9, type 20): where
// the client must reconnect after the login (Azure SQL's gateway in
// Redirect mode).
type Routing struct {
	// Protocol is 0 for TCP, the only value MS-TDS defines.
	Protocol uint8
	Port     uint16
	Server   string
}

// AppendRoutingEnvChange appends an ENVCHANGE token of type ROUTING:
// NewValue is US_VARBYTE (RoutingDataValueLength, then Protocol BYTE,
// ProtocolProperty USHORT = the port, AlternateServer US_VARCHAR) and
// OldValue is an empty US_VARBYTE (§2.2.7.9).
func AppendRoutingEnvChange(b []byte, r Routing) []byte {
	v := []byte{r.Protocol}
	v = binary.LittleEndian.AppendUint16(v, r.Port)
	v = binary.LittleEndian.AppendUint16(v, uint16(ucs2Len(r.Server)))
	v = appendUCS2(v, r.Server)
	return EnvChange{Type: EnvRouting, NewBytes: v}.AppendTo(b)
}

// ParseRouting decodes a ROUTING ENVCHANGE's NewBytes (as the decoders
// fill EnvChange.NewBytes) into a Routing.
func ParseRouting(v []byte) (Routing, error) {
	c := leCursor(v)
	var r Routing
	var n uint16
	if !c.u8(&r.Protocol) || !c.u16(&r.Port) || !c.u16(&n) {
		return r, errors.New("tds: ROUTING value too short")
	}
	var name []byte
	if !c.bytes(&name, 2*int(n)) {
		return r, fmt.Errorf("tds: ROUTING server name of %d characters, %d bytes left", n, len(c))
	}
	r.Server = decodeUCS2(name)
	return r, nil
}

// InsertBeforeFinalDone returns a login response payload with tok inserted
// before its last token, which must be a DONE (§2.2.7.6): a gateway adds
// its ROUTING ENVCHANGE to the server's LOGINACK that way. ok is false
// when the payload does not end with a DONE token.
func InsertBeforeFinalDone(payload, tok []byte) ([]byte, bool) {
	if len(payload) < DoneLen || payload[len(payload)-DoneLen] != TokenDone {
		return nil, false
	}
	cut := len(payload) - DoneLen
	out := make([]byte, 0, len(payload)+len(tok))
	out = append(out, payload[:cut]...)
	out = append(out, tok...)
	return append(out, payload[cut:]...), true
}

// AllHeaders returns the ALL_HEADERS block (§2.2.5.3) a SQL batch or RPC
// payload starts with, or nil when it has none that fits.
func AllHeaders(payload []byte) []byte {
	c := leCursor(payload)
	var total uint32
	if !c.u32(&total) || total < 4 || uint64(total) > uint64(len(payload)) {
		return nil
	}
	return payload[:total]
}

// ReplaceRequest returns a SQL batch payload (§2.2.6.7) with text and the
// ALL_HEADERS of req, a SQL batch or RPC payload, so the transaction
// descriptor the client sent goes on unchanged; a request without
// ALL_HEADERS gets the default one (no transaction).
func ReplaceRequest(req []byte, text string) []byte {
	h := AllHeaders(req)
	if h == nil {
		return AppendSQLBatch(nil, text, 0)
	}
	out := append([]byte(nil), h...)
	return appendUCS2(out, text)
}

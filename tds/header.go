package tds

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header is the 8-byte header in front of every TDS packet (MS-TDS §2.2.3.1).
// Length and SPID are big-endian on the wire, unlike almost everything else in TDS.
type Header struct {
	Type     PacketType
	Status   Status
	Length   uint16 // whole packet, header included
	SPID     uint16
	PacketID uint8
	Window   uint8
}

// Errors returned by header decoding; test with errors.Is.
var (
	ErrShortHeader  = errors.New("tds: short packet header")
	ErrBadLength    = errors.New("tds: packet length out of range")
	ErrMessageLimit = errors.New("tds: message exceeds size limit")
)

// ParseHeader decodes the first HeaderLen bytes of b. It checks the length
// against both bounds (8..32768) before anything subtracts from it.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("%w: have %d bytes, need %d", ErrShortHeader, len(b), HeaderLen)
	}
	h := Header{
		Type:     PacketType(b[0]),
		Status:   Status(b[1]),
		Length:   binary.BigEndian.Uint16(b[2:4]),
		SPID:     binary.BigEndian.Uint16(b[4:6]),
		PacketID: b[6],
		Window:   b[7],
	}
	if int(h.Length) < HeaderLen || int(h.Length) > MaxPacketLen {
		return h, fmt.Errorf("%w: %d (valid %d..%d)", ErrBadLength, h.Length, HeaderLen, MaxPacketLen)
	}
	return h, nil
}

// PayloadLen is the number of payload bytes after the header. It is only
// meaningful for a header that ParseHeader accepted.
func (h Header) PayloadLen() int { return int(h.Length) - HeaderLen }

// AppendTo appends the 8 header bytes to b.
func (h Header) AppendTo(b []byte) []byte {
	return append(b, byte(h.Type), byte(h.Status),
		byte(h.Length>>8), byte(h.Length),
		byte(h.SPID>>8), byte(h.SPID),
		h.PacketID, h.Window)
}

// Bytes returns the 8 header bytes.
func (h Header) Bytes() []byte { return h.AppendTo(make([]byte, 0, HeaderLen)) }

// String summarises the header for logs, e.g. "PRELOGIN status=0x01 len=47 spid=0 id=1".
func (h Header) String() string {
	return fmt.Sprintf("%s status=0x%02X len=%d spid=%d id=%d", h.Type, uint8(h.Status), h.Length, h.SPID, h.PacketID)
}

package tds

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ALL_HEADERS header types, MS-TDS §2.2.5.3.
const (
	HeaderQueryNotifications      uint16 = 0x0001
	HeaderTransactionDescriptor   uint16 = 0x0002
	HeaderTraceActivity           uint16 = 0x0003
	allHeadersTxnDescriptorLen           = 4 + 2 + 8 + 4 // HeaderLength, HeaderType, descriptor, outstanding count
	allHeadersTotalLenWithTxnDesc        = 4 + allHeadersTxnDescriptorLen
)

// ErrBadAllHeaders is returned for an ALL_HEADERS block whose lengths do not
// fit the payload.
var ErrBadAllHeaders = errors.New("tds: malformed ALL_HEADERS")

// ParseSQLBatch decodes a SQL batch payload (MS-TDS §2.2.6.7, packet type
// 0x01): the ALL_HEADERS block that TDS 7.2+ requires (§2.2.5.3: a DWORD
// total length including itself, then headers each with a DWORD length
// including itself), followed by the batch text in UCS-2LE.
func ParseSQLBatch(payload []byte) (string, error) {
	c := leCursor(payload)
	var total uint32
	if !c.u32(&total) {
		return "", fmt.Errorf("%w: %d-byte payload", ErrBadAllHeaders, len(payload))
	}
	if total < 4 || uint64(total) > uint64(len(payload)) {
		return "", fmt.Errorf("%w: total length %d, payload %d", ErrBadAllHeaders, total, len(payload))
	}
	hdrs := leCursor(payload[4:total])
	for i := 0; len(hdrs) > 0; i++ {
		var n uint32
		if !hdrs.u32(&n) || n < 6 || uint64(n-4) > uint64(len(hdrs)) {
			return "", fmt.Errorf("%w: header %d length %d, %d bytes left", ErrBadAllHeaders, i, n, len(hdrs)+4)
		}
		hdrs.skip(int(n - 4))
	}
	text := payload[total:]
	if len(text)%2 != 0 {
		return "", fmt.Errorf("tds: SQL batch text has odd length %d", len(text))
	}
	return decodeUCS2(text), nil
}

// AppendSQLBatch appends a SQL batch payload: ALL_HEADERS with one
// transaction descriptor header (type 2; descriptor txnDescriptor, 0 when no
// transaction is open; outstanding request count 1), then text in UCS-2LE.
func AppendSQLBatch(b []byte, text string, txnDescriptor uint64) []byte {
	b = binary.LittleEndian.AppendUint32(b, allHeadersTotalLenWithTxnDesc)
	b = binary.LittleEndian.AppendUint32(b, allHeadersTxnDescriptorLen)
	b = binary.LittleEndian.AppendUint16(b, HeaderTransactionDescriptor)
	b = binary.LittleEndian.AppendUint64(b, txnDescriptor)
	b = binary.LittleEndian.AppendUint32(b, 1)
	return appendUCS2(b, text)
}

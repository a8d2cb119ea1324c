package tds

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrBadRPC is returned for an RPC request whose name or id cannot be read.
var ErrBadRPC = errors.New("tds: malformed RPC request")

// rpcProcNames are the well-known procedure ids a client may send instead of
// a name (MS-TDS §2.2.6.6, ProcID).
var rpcProcNames = map[uint16]string{
	1: "sp_cursor", 2: "sp_cursoropen", 3: "sp_cursorprepare", 4: "sp_cursorexecute",
	5: "sp_cursorprepexec", 6: "sp_cursorunprepare", 7: "sp_cursorfetch", 8: "sp_cursoroption",
	9: "sp_cursorclose", 10: "sp_executesql", 11: "sp_prepare", 12: "sp_execute",
	13: "sp_prepexec", 14: "sp_prepexecrpc", 15: "sp_unprepare",
}

// ParseRPCName returns the procedure an RPC request calls (MS-TDS §2.2.6.6,
// packet type 0x03): after ALL_HEADERS (§2.2.5.3), NameLenProcID is either
// a US_VARCHAR procedure name or 0xFFFF followed by a well-known ProcID,
// which is returned by its name (or "procid:N" when unknown). Only the
// first request of a batched RPC is named; the parameters are not read.
func ParseRPCName(payload []byte) (string, error) {
	c := leCursor(payload)
	var total uint32
	if !c.u32(&total) {
		return "", fmt.Errorf("%w: %d-byte payload", ErrBadRPC, len(payload))
	}
	// TDS 7.2+ requires ALL_HEADERS; an older client starts with the
	// name length itself, which is far below 4 + a header.
	if total >= 4 && uint64(total) <= uint64(len(payload)) {
		c = leCursor(payload[total:])
	} else {
		c = leCursor(payload)
	}
	var n uint16
	if !c.u16(&n) {
		return "", fmt.Errorf("%w: no NameLenProcID", ErrBadRPC)
	}
	if n == 0xFFFF {
		var id uint16
		if !c.u16(&id) {
			return "", fmt.Errorf("%w: no ProcID", ErrBadRPC)
		}
		if name, ok := rpcProcNames[id]; ok {
			return name, nil
		}
		return "procid:" + strconv.Itoa(int(id)), nil
	}
	var name []byte
	if !c.bytes(&name, 2*int(n)) {
		return "", fmt.Errorf("%w: name of %d characters, %d bytes left", ErrBadRPC, n, len(c))
	}
	return decodeUCS2(name), nil
}

// AppendRPCName appends the start of an RPC request payload for a named
// procedure: ALL_HEADERS with one transaction descriptor header, the
// name, and option flags 0. Parameters are not written. Used by tests and
// the fuzz seeds.
func AppendRPCName(b []byte, name string, procID uint16) []byte {
	b = AppendSQLBatch(b, "", 0) // ALL_HEADERS only: the text is empty
	if name == "" {
		b = append(b, 0xFF, 0xFF, byte(procID), byte(procID>>8))
	} else {
		n := ucs2Len(name)
		b = append(b, byte(n), byte(n>>8))
		b = appendUCS2(b, name)
	}
	return append(b, 0, 0) // OptionFlags
}

package emulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// procExecuteSQL is sp_executesql's well-known ProcID (MS-TDS §2.2.6.6).
const procExecuteSQL = 10

// TDS type ids the statement parameter of sp_executesql can have
// (MS-TDS §2.2.5.4.3).
const (
	typeNVarChar = 0xE7
	typeNChar    = 0xEF
	typeNText    = 0x63
	typeVarChar  = 0xA7
	typeChar     = 0xAF
	plpMaxLen    = 0xFFFF             // USHORTLEN max length of a MAX type: the value is PLP
	plpNull      = 0xFFFFFFFFFFFFFFFF // PLP_NULL
	plpUnknown   = 0xFFFFFFFFFFFFFFFE // UNKNOWN_PLP_LEN
	maxPLPChunks = 1 << 16            // bound on the chunks we walk
)

var errRPCShort = errors.New("truncated")

// rpcCall is the part of an RPC request the emulator uses: which procedure,
// and for sp_executesql the statement text (its first parameter).
type rpcCall struct {
	procID   uint16 // 0 when called by name
	procName string
	stmt     string
	hasStmt  bool
}

func (c rpcCall) isExecuteSQL() bool {
	if c.procName == "" {
		return c.procID == procExecuteSQL
	}
	n := strings.ToLower(c.procName)
	n = strings.TrimPrefix(n, "master..")
	n = strings.TrimPrefix(n, "sys.")
	return n == "sp_executesql"
}

func (c rpcCall) name() string {
	if c.procName != "" {
		return c.procName
	}
	return fmt.Sprintf("ProcID %d", c.procID)
}

// rpcCursor reads little-endian values and never reads past its end.
type rpcCursor struct {
	b   []byte
	err error
}

func (c *rpcCursor) take(n int) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || n > len(c.b) {
		c.err = errRPCShort
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *rpcCursor) u8() uint8 {
	if b := c.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (c *rpcCursor) u16() uint16 {
	if b := c.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (c *rpcCursor) u32() uint32 {
	if b := c.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (c *rpcCursor) u64() uint64 {
	if b := c.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// parseRPC decodes the start of an RPC request (MS-TDS §2.2.6.6): the
// ALL_HEADERS block, the procedure name or id, the option flags and, when
// present and of a character type, the first parameter's value.
func parseRPC(payload []byte) (rpcCall, error) {
	var call rpcCall
	c := &rpcCursor{b: payload}
	total := c.u32()
	if c.err != nil || total < 4 || uint64(total) > uint64(len(payload)) {
		return call, fmt.Errorf("ALL_HEADERS length %d in a %d-byte payload", total, len(payload))
	}
	c.take(int(total) - 4)
	n := c.u16()
	if n == 0xFFFF {
		call.procID = c.u16()
	} else {
		call.procName = decodeUCS2(c.take(2 * int(n)))
	}
	c.u16() // OptionFlags
	if c.err != nil {
		return call, fmt.Errorf("procedure name: %w", c.err)
	}
	if len(c.b) == 0 || c.b[0] == 0x80 || c.b[0] == 0xFF || c.b[0] == 0xFE {
		return call, nil // no parameters, or a batch separator
	}
	stmt, ok, err := firstParamText(c)
	if err != nil {
		return call, fmt.Errorf("first parameter: %w", err)
	}
	call.stmt, call.hasStmt = stmt, ok
	return call, nil
}

// firstParamText reads one parameter (B_VARCHAR name, status flags,
// TYPE_INFO, value) and returns its value when it is character data.
func firstParamText(c *rpcCursor) (string, bool, error) {
	nameLen := c.u8()
	c.take(2 * int(nameLen))
	c.u8() // StatusFlags
	typ := c.u8()
	if c.err != nil {
		return "", false, c.err
	}
	var text string
	switch typ {
	case typeNVarChar, typeNChar, typeVarChar, typeChar:
		maxLen := c.u16()
		c.take(5) // collation
		var data []byte
		if maxLen == plpMaxLen {
			var err error
			if data, err = readPLP(c); err != nil {
				return "", false, err
			}
		} else {
			n := c.u16()
			if n != 0xFFFF { // CHARBIN_NULL
				data = c.take(int(n))
			}
		}
		if typ == typeNVarChar || typ == typeNChar {
			text = decodeUCS2(data)
		} else {
			text = string(data)
		}
	case typeNText:
		c.u32()   // max length
		c.take(5) // collation
		n := c.u32()
		if n != 0xFFFFFFFF {
			text = decodeUCS2(c.take(int(n)))
		}
	default:
		return "", false, nil
	}
	if c.err != nil {
		return "", false, c.err
	}
	return text, true, nil
}

// readPLP reads a partially length-prefixed value (MS-TDS §2.2.5.2.3):
// an 8-byte total length, then chunks of DWORD length + data up to a
// zero-length terminator.
func readPLP(c *rpcCursor) ([]byte, error) {
	total := c.u64()
	if c.err != nil || total == plpNull {
		return nil, c.err
	}
	if total != plpUnknown && total > uint64(len(c.b)) {
		return nil, fmt.Errorf("PLP length %d exceeds the %d bytes left", total, len(c.b))
	}
	var out []byte
	for i := 0; i < maxPLPChunks; i++ {
		n := c.u32()
		if c.err != nil {
			return nil, c.err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, c.take(int(n))...)
		if c.err != nil {
			return nil, c.err
		}
	}
	return nil, errors.New("too many PLP chunks")
}

// decodeUCS2 decodes UTF-16LE; an odd trailing byte is dropped.
func decodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

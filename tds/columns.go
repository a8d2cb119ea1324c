package tds

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ColumnType is a TDS data type id (MS-TDS §2.2.5.4). Only the types the
// emulator writes are supported by AppendColMetadata, AppendRow and the
// result decoder.
type ColumnType uint8

// Supported data types, MS-TDS §2.2.5.4.
const (
	ColInt4         ColumnType = 0x38 // INT4TYPE, fixed 4 bytes, not nullable
	ColInt8         ColumnType = 0x7F // INT8TYPE, fixed 8 bytes, not nullable
	ColIntN         ColumnType = 0x26 // INTNTYPE, Size 1, 2, 4 or 8, nullable
	ColBigVarBinary ColumnType = 0xA5 // BIGVARBINARYTYPE, varbinary(n)
	ColBigVarChar   ColumnType = 0xA7 // BIGVARCHARTYPE, varchar(n), with collation
	ColNVarChar     ColumnType = 0xE7 // NVARCHARTYPE, nvarchar(n), with collation
)

var columnTypeNames = map[ColumnType]string{
	ColInt4: "INT4", ColInt8: "INT8", ColIntN: "INTN",
	ColBigVarBinary: "BIGVARBINARY", ColBigVarChar: "BIGVARCHAR", ColNVarChar: "NVARCHAR",
}

// String returns the spec name of the type, or 0xNN.
func (t ColumnType) String() string {
	if n, ok := columnTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02X", uint8(t))
}

// MaxVarLen is the largest max length (in bytes) of a non-MAX variable
// column: varchar(8000), nvarchar(4000), varbinary(8000).
const MaxVarLen = 8000

// Column describes one column of a result set.
type Column struct {
	Name string // at most 255 characters; longer names are truncated
	Type ColumnType
	// Size is the maximum length in bytes, as on the wire: for ColNVarChar
	// that is twice the character count (nvarchar(50) is 100). For
	// variable types 0 means MaxVarLen; ColIntN needs 1, 2, 4 or 8 (0 means
	// 4). Ignored for ColInt4 and ColInt8. The decoder fills it for
	// variable types and INTN, and leaves 0 for fixed types.
	Size int
	// Nullable sets the nullable flag (fNullable). NULL values are accepted
	// for ColIntN and the variable types whatever this says.
	Nullable bool
}

// colFlagNullable is bit 0 of the COLMETADATA Flags (MS-TDS §2.2.7.4).
const colFlagNullable = 0x0001

// ErrUnsupportedType is returned for a data type this package cannot encode
// or decode.
var ErrUnsupportedType = errors.New("tds: unsupported column type")

// size returns the effective max length for c.
func (c Column) size() int {
	switch c.Type {
	case ColInt4:
		return 4
	case ColInt8:
		return 8
	case ColIntN:
		switch c.Size {
		case 1, 2, 4, 8:
			return c.Size
		}
		return 4
	case ColBigVarBinary, ColBigVarChar, ColNVarChar:
		if c.Size <= 0 || c.Size > MaxVarLen {
			return MaxVarLen
		}
		return c.Size
	}
	return 0
}

// AppendColMetadata appends a COLMETADATA token (MS-TDS §2.2.7.4, TDS 7.2+:
// 4-byte UserType) describing cols. Character columns carry
// DefaultCollation. Columns of unsupported type are written as INT4 so the
// stream stays well formed; AppendRow rejects values for them.
func AppendColMetadata(b []byte, cols []Column) []byte {
	b = append(b, TokenColMetadata)
	b = binary.LittleEndian.AppendUint16(b, uint16(min(len(cols), 0xFFFE)))
	coll := DefaultCollation()
	for _, c := range cols[:min(len(cols), 0xFFFE)] {
		b = binary.LittleEndian.AppendUint32(b, 0) // UserType
		var flags uint16
		if c.Nullable {
			flags |= colFlagNullable
		}
		b = binary.LittleEndian.AppendUint16(b, flags)
		switch c.Type {
		case ColInt4, ColInt8:
			b = append(b, byte(c.Type))
		case ColIntN:
			b = append(b, byte(c.Type), byte(c.size()))
		case ColBigVarBinary:
			b = append(b, byte(c.Type))
			b = binary.LittleEndian.AppendUint16(b, uint16(c.size()))
		case ColBigVarChar, ColNVarChar:
			b = append(b, byte(c.Type))
			b = binary.LittleEndian.AppendUint16(b, uint16(c.size()))
			b = append(b, coll[:]...)
		default:
			b = append(b, byte(ColInt4))
		}
		b = appendBVarChar(b, c.Name)
	}
	return b
}

// charNull is the USHORTLEN marking NULL in a variable column (CHARBIN_NULL).
const charNull = 0xFFFF

// AppendRow appends a ROW token (MS-TDS §2.2.7.19) with one value per
// column: int32 (or any Go integer in range) for ColInt4 and ColIntN(4),
// int64 for ColInt8, string for ColNVarChar and ColBigVarChar (the latter's
// bytes are written as given: use ASCII), []byte for ColBigVarBinary, nil
// for NULL where the type allows it. A count, type or length mismatch is an
// error and b is returned unchanged.
func AppendRow(b []byte, cols []Column, values []any) ([]byte, error) {
	if len(values) != len(cols) {
		return b, fmt.Errorf("tds: row has %d values for %d columns", len(values), len(cols))
	}
	out := append(b, TokenRow)
	for i, c := range cols {
		var err error
		out, err = appendValue(out, c, values[i])
		if err != nil {
			return b[:len(b):len(b)], fmt.Errorf("tds: column %d (%q, %s): %w", i, c.Name, c.Type, err)
		}
	}
	return out, nil
}

func appendValue(b []byte, c Column, v any) ([]byte, error) {
	switch c.Type {
	case ColInt4, ColInt8, ColIntN:
		size := c.size()
		if v == nil {
			if c.Type != ColIntN {
				return b, errors.New("NULL in a fixed-length column (use ColIntN)")
			}
			return append(b, 0), nil
		}
		n, ok := toInt64(v)
		if !ok {
			return b, fmt.Errorf("want an integer, have %T", v)
		}
		if size == 1 {
			// TINYINT is unsigned (MS-TDS §2.2.5.4.1 INT1TYPE).
			if n < 0 || n > math.MaxUint8 {
				return b, fmt.Errorf("%d out of range for TINYINT", n)
			}
		} else if bits := uint(8 * size); bits < 64 && (n < -(1<<(bits-1)) || n >= 1<<(bits-1)) {
			return b, fmt.Errorf("%d out of range for a %d-byte integer", n, size)
		}
		if c.Type == ColIntN {
			b = append(b, byte(size))
		}
		var tmp [8]byte
		binary.LittleEndian.PutUint64(tmp[:], uint64(n))
		return append(b, tmp[:size]...), nil
	case ColNVarChar, ColBigVarChar, ColBigVarBinary:
		if v == nil {
			return binary.LittleEndian.AppendUint16(b, charNull), nil
		}
		var data []byte
		switch x := v.(type) {
		case string:
			if c.Type == ColBigVarBinary {
				return b, fmt.Errorf("want []byte, have string")
			}
			if c.Type == ColNVarChar {
				data = appendUCS2(nil, x)
			} else {
				data = []byte(x)
			}
		case []byte:
			if c.Type != ColBigVarBinary {
				return b, fmt.Errorf("want string, have []byte")
			}
			data = x
		default:
			return b, fmt.Errorf("want string or []byte, have %T", v)
		}
		if len(data) > c.size() {
			return b, fmt.Errorf("value of %d bytes exceeds column size %d", len(data), c.size())
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
		return append(b, data...), nil
	}
	return b, fmt.Errorf("%w: %s", ErrUnsupportedType, c.Type)
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// parseColMetadata decodes the body of a COLMETADATA token (after the type
// byte). 0xFFFF columns means "no metadata" and yields nil.
func parseColMetadata(c *leCursor) ([]Column, error) {
	var n uint16
	if !c.u16(&n) {
		return nil, fmt.Errorf("%w: COLMETADATA count", ErrTokenTruncated)
	}
	if n == 0xFFFF {
		return nil, nil
	}
	cols := make([]Column, 0, min(int(n), len(*c)/8+1))
	for i := range int(n) {
		var userType uint32
		var flags uint16
		var typ uint8
		if !c.u32(&userType) || !c.u16(&flags) || !c.u8(&typ) {
			return nil, fmt.Errorf("%w: COLMETADATA column %d", ErrTokenTruncated, i)
		}
		col := Column{Type: ColumnType(typ), Nullable: flags&colFlagNullable != 0}
		switch col.Type {
		case ColInt4, ColInt8:
		case ColIntN:
			var sz uint8
			if !c.u8(&sz) {
				return nil, fmt.Errorf("%w: COLMETADATA column %d", ErrTokenTruncated, i)
			}
			if sz != 1 && sz != 2 && sz != 4 && sz != 8 {
				return nil, fmt.Errorf("%w: INTN of size %d", ErrUnsupportedType, sz)
			}
			col.Size = int(sz)
		case ColBigVarBinary, ColBigVarChar, ColNVarChar:
			var sz uint16
			if !c.u16(&sz) {
				return nil, fmt.Errorf("%w: COLMETADATA column %d", ErrTokenTruncated, i)
			}
			// 0xFFFF is MAX (PLP encoding), not supported here.
			if sz == 0 || sz > MaxVarLen {
				return nil, fmt.Errorf("%w: %s with max length %d", ErrUnsupportedType, col.Type, sz)
			}
			col.Size = int(sz)
			if col.Type != ColBigVarBinary && !c.skip(5) { // COLLATION
				return nil, fmt.Errorf("%w: COLMETADATA column %d collation", ErrTokenTruncated, i)
			}
		default:
			return nil, fmt.Errorf("%w: %s in column %d", ErrUnsupportedType, col.Type, i)
		}
		if !c.bVarChar(&col.Name) {
			return nil, fmt.Errorf("%w: COLMETADATA column %d name", ErrTokenTruncated, i)
		}
		cols = append(cols, col)
	}
	return cols, nil
}

// parseRow decodes the body of a ROW token for cols.
func parseRow(c *leCursor, cols []Column) ([]any, error) {
	row := make([]any, len(cols))
	for i, col := range cols {
		switch col.Type {
		case ColInt4:
			var v uint32
			if !c.u32(&v) {
				return nil, fmt.Errorf("%w: ROW column %d", ErrTokenTruncated, i)
			}
			row[i] = int32(v)
		case ColInt8:
			var v uint64
			if !c.u64(&v) {
				return nil, fmt.Errorf("%w: ROW column %d", ErrTokenTruncated, i)
			}
			row[i] = int64(v)
		case ColIntN:
			var n uint8
			var d []byte
			if !c.u8(&n) || !c.bytes(&d, int(n)) {
				return nil, fmt.Errorf("%w: ROW column %d", ErrTokenTruncated, i)
			}
			switch {
			case n == 0:
				row[i] = nil
			case int(n) != col.Size:
				return nil, fmt.Errorf("tds: ROW column %d: INTN value of %d bytes in a %d-byte column", i, n, col.Size)
			case n == 1:
				row[i] = d[0]
			case n == 2:
				row[i] = int16(binary.LittleEndian.Uint16(d))
			case n == 4:
				row[i] = int32(binary.LittleEndian.Uint32(d))
			default:
				row[i] = int64(binary.LittleEndian.Uint64(d))
			}
		case ColBigVarBinary, ColBigVarChar, ColNVarChar:
			var n uint16
			if !c.u16(&n) {
				return nil, fmt.Errorf("%w: ROW column %d", ErrTokenTruncated, i)
			}
			if n == charNull {
				row[i] = nil
				continue
			}
			if int(n) > col.Size {
				return nil, fmt.Errorf("tds: ROW column %d: %d bytes in a column of max %d", i, n, col.Size)
			}
			var d []byte
			if !c.bytes(&d, int(n)) {
				return nil, fmt.Errorf("%w: ROW column %d", ErrTokenTruncated, i)
			}
			switch col.Type {
			case ColNVarChar:
				if n%2 != 0 {
					return nil, fmt.Errorf("tds: ROW column %d: odd NVARCHAR length %d", i, n)
				}
				row[i] = decodeUCS2(d)
			case ColBigVarChar:
				row[i] = string(d)
			default:
				row[i] = append([]byte{}, d...)
			}
		default:
			return nil, fmt.Errorf("%w: %s in column %d", ErrUnsupportedType, col.Type, i)
		}
	}
	return row, nil
}

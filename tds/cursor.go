package tds

import (
	"encoding/binary"
	"unicode/utf16"
)

// leCursor is a little-endian counterpart of cryptobyte.String for the parts
// of TDS that are little-endian (LOGIN7, tokens, ALL_HEADERS). Every read
// checks the remaining length first and reports failure instead of
// panicking; on failure the cursor is left unchanged.
type leCursor []byte

func (s *leCursor) read(n int) ([]byte, bool) {
	if n < 0 || len(*s) < n {
		return nil, false
	}
	v := (*s)[:n:n]
	*s = (*s)[n:]
	return v, true
}

func (s *leCursor) u8(out *uint8) bool {
	v, ok := s.read(1)
	if ok {
		*out = v[0]
	}
	return ok
}

func (s *leCursor) u16(out *uint16) bool {
	v, ok := s.read(2)
	if ok {
		*out = binary.LittleEndian.Uint16(v)
	}
	return ok
}

func (s *leCursor) u32(out *uint32) bool {
	v, ok := s.read(4)
	if ok {
		*out = binary.LittleEndian.Uint32(v)
	}
	return ok
}

func (s *leCursor) u64(out *uint64) bool {
	v, ok := s.read(8)
	if ok {
		*out = binary.LittleEndian.Uint64(v)
	}
	return ok
}

func (s *leCursor) bytes(out *[]byte, n int) bool {
	v, ok := s.read(n)
	if ok {
		*out = v
	}
	return ok
}

func (s *leCursor) skip(n int) bool {
	_, ok := s.read(n)
	return ok
}

// bVarChar reads a B_VARCHAR: a one-byte count of UCS-2 characters, then
// the characters (MS-TDS §2.2.5.1.3).
func (s *leCursor) bVarChar(out *string) bool {
	save := *s
	var n uint8
	var b []byte
	if !s.u8(&n) || !s.bytes(&b, 2*int(n)) {
		*s = save
		return false
	}
	*out = decodeUCS2(b)
	return true
}

// usVarChar reads a US_VARCHAR: a two-byte count of UCS-2 characters, then
// the characters (MS-TDS §2.2.5.1.3).
func (s *leCursor) usVarChar(out *string) bool {
	save := *s
	var n uint16
	var b []byte
	if !s.u16(&n) || !s.bytes(&b, 2*int(n)) {
		*s = save
		return false
	}
	*out = decodeUCS2(b)
	return true
}

// bVarByte reads a B_VARBYTE: a one-byte length, then the bytes.
func (s *leCursor) bVarByte(out *[]byte) bool {
	save := *s
	var n uint8
	if !s.u8(&n) || !s.bytes(out, int(n)) {
		*s = save
		return false
	}
	return true
}

// usVarByte reads a US_VARBYTE: a two-byte length, then the bytes.
func (s *leCursor) usVarByte(out *[]byte) bool {
	save := *s
	var n uint16
	if !s.u16(&n) || !s.bytes(out, int(n)) {
		*s = save
		return false
	}
	return true
}

// lVarByte reads an L_VARBYTE: a four-byte length, then the bytes.
func (s *leCursor) lVarByte(out *[]byte) bool {
	save := *s
	var n uint32
	// Widen before comparing so a huge length cannot wrap on 32-bit int.
	if !s.u32(&n) || uint64(n) > uint64(len(*s)) || !s.bytes(out, int(n)) {
		*s = save
		return false
	}
	return true
}

// decodeUCS2 decodes UTF-16LE bytes (SQL Server's "UCS-2"). Unpaired
// surrogates become U+FFFD; an odd trailing byte is ignored.
func decodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// appendUCS2 appends s as UTF-16LE.
func appendUCS2(b []byte, s string) []byte {
	for _, r := range s {
		if r1, r2 := utf16.EncodeRune(r); r1 != '\uFFFD' || r2 != '\uFFFD' {
			b = binary.LittleEndian.AppendUint16(b, uint16(r1))
			b = binary.LittleEndian.AppendUint16(b, uint16(r2))
			continue
		}
		// BMP rune; invalid UTF-8 bytes arrive here as U+FFFD.
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

// ucs2Len is the number of UTF-16 code units appendUCS2 writes for s.
func ucs2Len(s string) int {
	n := 0
	for _, r := range s {
		// Ranging over a string never yields a surrogate, so RuneLen is 1
		// or 2; the guard keeps the count in step with appendUCS2 anyway.
		if utf16.RuneLen(r) == 2 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

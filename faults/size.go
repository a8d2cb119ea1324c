package faults

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ---- sizes and rates ----------------------------------------------------

// Byte multipliers by lower-case unit. SI units are powers of 1000, IEC
// units powers of 1024, as in IEC 80000-13.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// Bit multipliers (SI, as in tc's kbit/mbit) for rates.
var bitUnits = map[string]int64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}

// splitNumber splits "1.5 MiB" into an exact number and the lower-case unit.
func splitNumber(s string) (*big.Rat, string, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" || strings.Count(num, ".") > 1 || num == "." {
		return nil, "", fmt.Errorf("bad number %q", s)
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, "", fmt.Errorf("bad number %q", s)
	}
	return v, unit, nil
}

// toInt64 returns v if it fits in an int64.
func toInt64(v *big.Rat) (int64, bool) {
	if !v.IsInt() || !v.Num().IsInt64() {
		return 0, false
	}
	return v.Num().Int64(), true
}

// ParseSize parses a byte count: a non-negative number with an optional
// unit B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of
// 1024), case-insensitive: "1000", "64KiB", "1.5MB". The result must be a
// whole number of bytes.
func ParseSize(s string) (int64, error) {
	v, unit, err := splitNumber(s)
	if err != nil {
		return 0, err
	}
	m, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q (use B, KB, KiB, MB, MiB, GB, GiB)", unit)
	}
	n, ok := toInt64(v.Mul(v, new(big.Rat).SetInt64(m)))
	if !ok {
		return 0, fmt.Errorf("size %q is not a whole number of bytes in range", s)
	}
	return n, nil
}

// ParseRate parses a rate in bytes per second: a number with a byte unit
// and an optional "/s" ("1MiB/s", "500KB/s", "1000B/s") or a bit unit bit,
// kbit, mbit, gbit (powers of 1000, optional "/s": "8Mbit" is 1000000
// bytes/s). A unit is required, so that a bare Toxiproxy-style number (KB/s
// there) is not silently read as bytes; "bps" forms are refused as
// ambiguous. Bits are rounded down to whole bytes; the result is at least 1.
func ParseRate(s string) (int64, error) {
	v, unit, err := splitNumber(s)
	if err != nil {
		return 0, err
	}
	unit = strings.TrimSuffix(unit, "/s")
	var m int64
	var isBits bool
	switch {
	case unit == "":
		return 0, errors.New("missing unit (e.g. 64KiB/s, 1MB/s, 8Mbit)")
	case strings.HasSuffix(unit, "ps"):
		return 0, fmt.Errorf("ambiguous unit %q (bits or bytes?): write e.g. 8Mbit or 1MB/s", unit)
	case bitUnits[unit] != 0:
		m, isBits = bitUnits[unit], true
	case byteUnits[unit] != 0:
		m = byteUnits[unit]
	default:
		return 0, fmt.Errorf("unknown rate unit %q (use B/s, KB/s, KiB/s, MB/s, MiB/s, GB/s, GiB/s or bit, kbit, mbit, gbit)", unit)
	}
	v.Mul(v, new(big.Rat).SetInt64(m))
	if isBits {
		v.Quo(v, big.NewRat(8, 1))
	}
	// Round down: a limit must not be exceeded.
	q := new(big.Int).Quo(v.Num(), v.Denom())
	if !q.IsInt64() {
		return 0, fmt.Errorf("rate %q out of range", s)
	}
	if q.Int64() < 1 {
		return 0, fmt.Errorf("rate %q is less than 1 byte/s", s)
	}
	return q.Int64(), nil
}
